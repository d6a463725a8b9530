// The load generator of the accept-path benchmark, in its own process: autocannon POSTs a small JSON body
// to a server with a fixed number of connections for a fixed time (after a warm-up that is not counted).
//
// argv: <url> <connections> <durationSeconds> <warmupSeconds>   one run, then exit
// argv: (none)   stay up and answer each `{ type: 'load', url, connections, duration, warmup }` message with a
//                `result` message, so that many short runs cost no process start each
import autocannon from 'autocannon';
import { main, send } from '../lib/ipc.js';

interface LoadRequest {
  url: string;
  connections: number;
  duration: number;
  warmup: number;
}

async function load({ url, connections, duration, warmup }: LoadRequest): Promise<void> {
  const result = await autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ steps: 3, stepMs: 100, value: 'benchmark' }),
    connections,
    duration,
    warmup: warmup > 0 ? { connections, duration: warmup } : undefined,
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
    // Every answer the server gave in this run, warm-up included (for its CPU time per request).
    requests: completed + (result.warmup ? result.warmup['2xx'] + result.warmup.non2xx : 0),
  });
}

const [url, connections, duration, warmup] = process.argv.slice(2);
if (url) {
  main(() => load({ url, connections: Number(connections), duration: Number(duration), warmup: Number(warmup) }));
} else {
  main(
    async () => {
      // One run at a time: the parent waits for each result before it asks for the next.
      process.on('message', (message: { type: string } & LoadRequest) => {
        if (message.type !== 'load') return;
        load(message).catch((error: unknown) => {
          send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
        });
      });
      send({ type: 'ready' });
    },
    { exit: false },
  );
}
