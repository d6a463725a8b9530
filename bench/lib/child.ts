// Child processes of the benchmark: every server, load generator and queue contender runs in its own Node
// process (its own heap and event loop), started with tsx and spoken to over the IPC channel.
import { type ChildProcess, fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT_DIR = join(BENCH_DIR, '..');

export interface Message {
  type: string;
  [key: string]: unknown;
}

export interface ChildOptions {
  env?: Record<string, string>;
  /** Extra Node flags (e.g. `--expose-gc`, `--cpu-prof`). */
  nodeArgs?: string[];
  /** Forward the child's stderr as it comes (default: keep it and print it only when the child fails). */
  verbose?: boolean;
}

export class Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly #inbox: Message[] = [];
  readonly #waiters: Array<{ type: string; resolve: (m: Message) => void; reject: (e: Error) => void }> = [];
  #output = '';
  #exit: Promise<number | null>;
  #exited = false;

  constructor(script: string, args: string[], options: ChildOptions = {}) {
    this.name = `${script} ${args.join(' ')}`.trim();
    this.process = fork(join(BENCH_DIR, script), args, {
      cwd: ROOT_DIR,
      execArgv: ['--import', 'tsx', ...(options.nodeArgs ?? [])],
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString()).slice(-8000);
      if (options.verbose) process.stderr.write(chunk);
    };
    this.process.stdout?.on('data', keep);
    this.process.stderr?.on('data', keep);
    this.process.on('message', (message: Message) => this.#receive(message));
    this.#exit = new Promise((resolve) => {
      this.process.once('exit', (code) => {
        this.#exited = true;
        const error = new Error(`${this.name} exited (code ${code}) before answering\n${this.#output}`);
        for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
        resolve(code);
      });
    });
  }

  send(message: Message): void {
    this.process.send(message);
  }

  /** The next message of `type` (an `error` message from the child rejects). */
  next<T = Message>(type: string, timeoutMs = 120_000): Promise<T> {
    const index = this.#inbox.findIndex((m) => m.type === type || m.type === 'error');
    if (index !== -1) {
      const [message] = this.#inbox.splice(index, 1);
      return message.type === 'error'
        ? Promise.reject(this.#failure(message))
        : Promise.resolve(message as unknown as T);
    }
    if (this.#exited) return Promise.reject(new Error(`${this.name} has exited\n${this.#output}`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i !== -1) this.#waiters.splice(i, 1);
        reject(new Error(`${this.name}: no "${type}" message within ${timeoutMs} ms\n${this.#output}`));
      }, timeoutMs);
      const waiter = {
        type,
        resolve: (m: Message) => {
          clearTimeout(timer);
          resolve(m as unknown as T);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Ask the child to stop (SIGTERM), then kill it (SIGKILL) if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.#exited) return;
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await this.#exit;
    clearTimeout(timer);
  }

  /** Resolves with the exit code once the child has exited by itself. */
  exited(): Promise<number | null> {
    return this.#exit;
  }

  get output(): string {
    return this.#output;
  }

  #receive(message: Message): void {
    const index = this.#waiters.findIndex((w) => w.type === message.type || message.type === 'error');
    if (index === -1) {
      this.#inbox.push(message);
      return;
    }
    const [waiter] = this.#waiters.splice(index, 1);
    if (message.type === 'error') waiter.reject(this.#failure(message));
    else waiter.resolve(message);
  }

  #failure(message: Message): Error {
    return new Error(`${this.name} failed: ${String(message.message)}\n${this.#output}`);
  }
}

/** Run `script` to completion and return its `result` message. */
export async function runChild<T = Message>(
  script: string,
  args: string[],
  options: ChildOptions & { timeoutMs?: number } = {},
): Promise<T> {
  const child = new Child(script, args, options);
  try {
    const result = await child.next<T>('result', options.timeoutMs ?? 180_000);
    // Let it exit by itself (and write its --cpu-prof profile), within reason.
    await Promise.race([child.exited(), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    return result;
  } finally {
    await child.stop();
  }
}

/** CPU time of process `pid`, all its threads (a store's checkpoint thread too), in ns (NaN where /proc has no schedstat). */
export function processCpuNs(pid: number | undefined): number {
  try {
    let total = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    }
    return total;
  } catch {
    return Number.NaN;
  }
}
