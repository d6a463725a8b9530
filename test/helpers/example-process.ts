// Start an example (examples/<framework>.ts) as the examples contract says — `tsx examples/<framework>.ts` with
// PORT, STORE, WEBHOOK_SECRET and WEBHOOK_ALLOW_ORIGINS in the environment — and wait until it answers HTTP.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './embedded-postgres.js';

export type ExampleFramework = 'express' | 'fastify' | 'koa';

export interface ExampleEnv {
  /** `memory` (default), `sqlite:<file path>` or a `postgres://` URL. */
  STORE?: string;
  WEBHOOK_SECRET?: string;
  WEBHOOK_ALLOW_ORIGINS?: string;
  /** `false` makes an API-only process (examples/worker.ts runs the jobs). */
  WORKER?: string;
  /** Lease in ms (the examples read LEASE_MS); the helper defaults it to 3000. */
  LEASE_MS?: string;
  /** Mounts the dashboard at /admin (HTTP Basic, user `admin`); unset: nothing there. */
  ADMIN_TOKEN?: string;
}

export interface ExampleProcess {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  pid: number;
  /**
   * Stop the example. `SIGKILL` kills its whole process group at once (tsx and the node process it runs), as a
   * crash would; any other signal goes to tsx, which relays it to the example (graceful shutdown). Resolves once
   * the process has exited.
   */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Resolves when the process exits. */
  exited: Promise<ExitInfo>;
  /** What the process wrote to stdout and stderr so far (the last 64 KiB). */
  output(): string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export { freePort };

const root = join(import.meta.dirname, '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');
const MAX_OUTPUT = 64 * 1024;
const live = new Set<ChildProcess>();

// Never leave an example behind when the test process ends (a failed test, a timeout).
process.once('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Start `examples/<framework>.ts` and wait until `GET /jobs/x` answers (any HTTP status). */
export async function startExample(
  framework: ExampleFramework,
  env: ExampleEnv = {},
  options: { port?: number; timeoutMs?: number } = {},
): Promise<ExampleProcess> {
  const port = options.port ?? (await freePort());
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    STORE: env.STORE ?? 'memory',
    // A short lease, so that jobs of a SIGKILLed example are taken over in seconds, not the default 30 s.
    LEASE_MS: env.LEASE_MS ?? '3000',
  };
  for (const name of ['WEBHOOK_SECRET', 'WEBHOOK_ALLOW_ORIGINS', 'WORKER', 'ADMIN_TOKEN'] as const) {
    if (env[name] === undefined) delete childEnv[name];
    else childEnv[name] = env[name];
  }
  // detached: the example gets its own process group, so that SIGKILL reaches tsx's child too.
  const child = spawn(tsx, [`examples/${framework}.ts`], {
    cwd: root,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  let output = '';
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > MAX_OUTPUT) output = output.slice(-MAX_OUTPUT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    if (exitInfo) {
      throw new Error(
        `examples/${framework}.ts exited before it answered (${exitInfo.code ?? exitInfo.signal}):\n${output}`,
      );
    }
    try {
      const res = await fetch(`${url}/jobs/x`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      killGroup(child, 'SIGKILL');
      throw new Error(`examples/${framework}.ts did not answer on port ${port} in time:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  return {
    url,
    port,
    pid: child.pid as number,
    exited,
    output: () => output,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (exitInfo) return exitInfo;
      if (signal === 'SIGKILL') {
        killGroup(child, 'SIGKILL');
      } else {
        child.kill(signal);
        // A graceful shutdown that hangs is a bug the caller should see, but never leave the process behind.
        const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 15_000);
        const info = await exited;
        clearTimeout(timer);
        killGroup(child, 'SIGKILL');
        return info;
      }
      return exited;
    },
  };
}
