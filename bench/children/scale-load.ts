// The scale benchmark's load generator (bench/scale.ts), in its own process: autocannon POSTs the accept path's
// body with `X-User` drawn at random from `owners` users per request (the seeded tables spread jobs over as many).
//
//   { type: 'load', url, connections, duration, warmup, owners }  one run; answers `result` (req/s, p50, p99, and
//                                                                   the requests accepted, warm-up included)
//   { type: 'record', url, connections, owners }                    load until `stop`; answers `samples`: the wall
//                                                                   time (ms) and latency (ms) of every response
import autocannonUntyped from 'autocannon';
import { main, send } from '../lib/ipc.js';

/** The part of autocannon used here beyond bench/autocannon.d.ts: per-request setup, and the running instance. */
interface RequestSpec {
  method: string;
  body: string;
  setupRequest(req: { headers?: Record<string, string> }): { headers?: Record<string, string> };
}
interface Options {
  url: string;
  connections: number;
  duration: number;
  requests: RequestSpec[];
}
interface Instance {
  on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, ms: number) => void): void;
  on(event: 'done', listener: () => void): void;
  stop(): void;
}
interface Autocannon {
  (options: Options): Promise<Awaited<ReturnType<typeof autocannonUntyped>>>;
  (options: Options, done: () => void): Instance;
}
const autocannon = autocannonUntyped as unknown as Autocannon;

interface LoadRequest {
  type: string;
  url: string;
  connections: number;
  duration: number;
  warmup: number;
  owners: number;
}

const BODY = JSON.stringify({ steps: 3, stepMs: 100, value: 'benchmark' });

function options(request: LoadRequest, duration: number): Options {
  return {
    url: request.url,
    connections: request.connections,
    duration,
    requests: [
      {
        method: 'POST',
        body: BODY,
        setupRequest: (req) => ({
          ...req,
          headers: {
            ...req.headers,
            'content-type': 'application/json',
            'x-user': `user-${Math.floor(Math.random() * request.owners)}`,
          },
        }),
      },
    ],
  };
}

async function load(request: LoadRequest): Promise<void> {
  const warm = request.warmup > 0 ? (await autocannon(options(request, request.warmup)))['2xx'] : 0;
  const result = await autocannon(options(request, request.duration));
  send({
    type: 'result',
    requestsPerSecond: result['2xx'] / result.duration,
    // Accepted over the whole run, warm-up included: the server's CPU time is read over both.
    accepted: warm + result['2xx'],
    p50: result.latency.p50,
    p99: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
  });
}

function record(request: LoadRequest): void {
  const times: number[] = [];
  const latencies: number[] = [];
  let failures = 0;
  const instance = autocannon(options(request, 3600), () => {});
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    if (statusCode >= 300) failures += 1;
    times.push(Date.now());
    latencies.push(responseTime);
  });
  instance.on('done', () => send({ type: 'samples', times, latencies, failures }));
  process.once('message', (message: { type: string }) => {
    if (message.type === 'stop') instance.stop();
  });
}

main(
  async () => {
    process.on('message', (message: LoadRequest) => {
      if (message.type === 'load') {
        load(message).catch((error: unknown) => send({ type: 'error', message: String(error) }));
      } else if (message.type === 'record') {
        record(message);
      }
    });
    send({ type: 'ready' });
  },
  { exit: false },
);
