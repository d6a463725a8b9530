// The load generator of the accept-path benchmark, in its own process: autocannon POSTs a small JSON body
// to the server with a fixed number of connections for a fixed time (after a warm-up that is not counted).
//
// argv: <url> <connections> <durationSeconds> <warmupSeconds>
import autocannon from 'autocannon';
import { main, send } from '../lib/ipc.js';

const [url, connections, duration, warmup] = process.argv.slice(2);

main(async () => {
  const result = await autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ steps: 3, stepMs: 100, value: 'benchmark' }),
    connections: Number(connections),
    duration: Number(duration),
    warmup: Number(warmup) > 0 ? { connections: Number(connections), duration: Number(warmup) } : undefined,
  });
  const completed = result['2xx'] + result.non2xx;
  send({
    type: 'result',
    requestsPerSecond: result['2xx'] / result.duration,
    completedPerSecond: completed / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count])),
  });
});
