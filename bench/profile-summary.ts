/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by where the
 * code lives (a package, a src/ file, node internals, GC, idle). Also runnable on its own:
 *   npx tsx bench/profile-summary.ts bench/results/cpuprof/<file>.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function place(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return url;
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  const bench = url.indexOf('/bench/');
  if (bench >= 0) return url.slice(bench + 1);
  return url;
}

export function summarizeProfile(file: string, top = 25) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const functions = new Map<string, number>();
  const places = new Map<string, number>();
  for (const [id, micros] of self) {
    const { callFrame } = byId.get(id)!;
    const where = place(callFrame.url, callFrame.functionName);
    const fn = `${callFrame.functionName || '(anonymous)'} ${where}${callFrame.url ? `:${callFrame.lineNumber + 1}` : ''}`;
    functions.set(fn, (functions.get(fn) ?? 0) + micros);
    places.set(where, (places.get(where) ?? 0) + micros);
  }
  const share = (entries: Map<string, number>) =>
    [...entries.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, micros]) => ({
        name,
        ms: Math.round(micros / 1000),
        pct: Math.round((1000 * micros) / total) / 10,
      }));
  const idle = (places.get('(idle)') ?? 0) / total;
  return {
    file,
    profiled_seconds: Math.round((profile.endTime - profile.startTime) / 1e4) / 100,
    busy_pct: Math.round(1000 * (1 - idle)) / 10,
    by_place: share(places),
    by_function: share(functions),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  const top = Number(process.argv[3] ?? 30);
  if (!file || !Number.isInteger(top)) {
    console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const summary = summarizeProfile(file, top);
  console.log(`${summary.file}: ${summary.profiled_seconds}s profiled, main thread busy ${summary.busy_pct}%`);
  console.log('\nself time by place:');
  for (const row of summary.by_place)
    console.log(`  ${row.pct.toFixed(1).padStart(5)}%  ${String(row.ms).padStart(7)} ms  ${row.name}`);
  console.log('\nself time by function:');
  for (const row of summary.by_function)
    console.log(`  ${row.pct.toFixed(1).padStart(5)}%  ${String(row.ms).padStart(7)} ms  ${row.name}`);
}
