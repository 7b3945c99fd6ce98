// npm run bench:fraud: scores 100,000 decisions in process with the shipped model and prints the latency
// of scoreRisk (feature vector, tree walk, reasons) per decision. Target: p99 <= 1 ms.
import { generate } from '../scripts/fraud/generator.js';
import { decisions } from '../src/modules/fraud/model/dataset.js';
import { loadShippedModel, scoreRisk } from '../src/modules/fraud/model/index.js';

const DECISIONS = 100_000;
const model = loadShippedModel();
const signals = [...decisions(generate({ days: 14, seed: 2026, people: 3000 }))].map((d) => d.signals);

// Warm-up, so the JIT has compiled the scorer before it is measured.
for (let i = 0; i < 20_000; i++) scoreRisk(model, signals[i % signals.length]!);

const latencies = new Float64Array(DECISIONS);
let checksum = 0;
const started = process.hrtime.bigint();
for (let i = 0; i < DECISIONS; i++) {
  const t0 = process.hrtime.bigint();
  checksum += scoreRisk(model, signals[i % signals.length]!).riskScore;
  latencies[i] = Number(process.hrtime.bigint() - t0) / 1e6;
}
const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
latencies.sort();
const at = (q: number) => latencies[Math.min(DECISIONS - 1, Math.floor(q * DECISIONS))]!;
const result = {
  decisions: DECISIONS,
  model_version: model.version,
  trees: model.forest.roots.length,
  p50_ms: at(0.5),
  p99_ms: at(0.99),
  max_ms: latencies[DECISIONS - 1],
  decisions_per_second: Math.round(DECISIONS / (elapsedMs / 1000)),
  checksum,
  target_p99_ms: 1,
};
console.log(JSON.stringify(result, null, 2));
if (result.p99_ms > 1) process.exitCode = 1;
