/**
 * The bench's webhook receiver, in a process of its own: answers 200 at once and records, per
 * delivery, the lag from the event's commit (`produced_at`, set by the producer) to its arrival.
 * GET /stats answers the count, distinct webhook-ids and lag percentiles; POST /reset clears them.
 */
import http from 'node:http';

let lags: number[] = [];
let ids = new Set<string>();
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    const sorted = [...lags].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    res.end(JSON.stringify({ count: lags.length, distinct: ids.size, p50: at(0.5), p99: at(0.99), max: at(1) }));
    return;
  }
  if (req.url === '/reset') {
    lags = [];
    ids = new Set();
    res.end('{}');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const event = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    lags.push(Date.now() - event.data.object.produced_at);
    ids.add(`${req.url}:${String(req.headers['webhook-id'])}`);
    res.end('ok');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
