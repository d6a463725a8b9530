// The runtime: createJobs(), define(), submit, and the worker loop (claim, run, heartbeat, retry, timeout, cancel).
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { MemoryStore } from '../stores/memory.js';
import { type Backoff, backoffDelay } from './backoff.js';
import {
  CanceledError,
  InputError,
  JobError,
  QueueFullError,
  RespondAsyncError,
  ShutdownError,
  StoreUnavailableError,
  TimeoutError,
  UnrecoverableError,
} from './errors.js';
import { newJobId } from './ids.js';
import { OutageLog } from './outage-log.js';
import { assertJobStore, type CancelOutcome, type CreateResult, type JobStore, type ListPosition } from './store.js';
import type { JobChange, JobContext, JobErrorInfo, JobHandler, JobRecord, NewJob } from './types.js';
import { isTerminal } from './types.js';

export interface Logger {
  error(message: string, details?: unknown): void;
  warn?(message: string, details?: unknown): void;
}

export interface JobsOptions {
  /** Where jobs live. Default: a new `MemoryStore()` (one process, lost on exit). */
  store?: JobStore;
  /** Jobs this process runs at once. Default 10. */
  concurrency?: number;
  /** Run jobs in this process. `false` makes an API-only process that submits and serves status. Default true. */
  worker?: boolean;
  /** Lease length in ms; the runner renews it every third of this while the handler runs. Default 30 000. */
  leaseMs?: number;
  /** How often to look for due jobs when nothing woke the worker (delayed retries, other processes), in ms. Default 1000. */
  pollIntervalMs?: number;
  /** How long finished jobs stay readable (and idempotency keys stay bound), in ms. Default 24 h. */
  retentionMs?: number;
  /** Largest result a handler may return, in bytes of JSON; larger fails the job. Default 1 MiB. */
  maxResultBytes?: number;
  /** Where handler errors are reported (the full error, stack included, stays on the server). Default `console`. */
  logger?: Logger;
}

export interface DefineOptions {
  /** Attempts in all, the first included. Default 3. */
  attempts?: number;
  /** Delay between attempts. Default exponential from 1 s, capped at 5 min, with jitter. */
  backoff?: Backoff;
  /** Abort the handler's signal and fail the attempt after this many ms. Default: no limit. */
  timeoutMs?: number;
}

/** A job registered with `jobs.define()`: pass it to a framework adapter's `route()`. */
export interface JobDefinition<Input = unknown, Result = unknown> {
  readonly name: string;
  readonly handler: JobHandler<Input, Result>;
  readonly options: Readonly<Required<Pick<DefineOptions, 'attempts'>> & DefineOptions>;
  /** Phantom fields carrying the types to the routes and status documents. */
  readonly __types?: { input: Input; result: Result };
}

export interface SubmitOptions {
  owner?: string | null;
  idempotencyKey?: string | null;
  requestHash?: string | null;
  callbackUrl?: string | null;
  /**
   * The JSON text of `input`, when the caller already holds it (the HTTP adapters build it from the request body
   * as received): the store keeps this text instead of serialising `input` again. It must parse to `input`.
   */
  inputJson?: string;
}

export interface CloseOptions {
  /** How long running handlers may take to finish before their signals abort and leases go back. Default 10 000 ms. */
  timeoutMs?: number;
}

/** What `handler` may return to make the status URL answer `303 See Other` to `url` when complete. */
export interface SeeOther<Result = unknown> {
  readonly [SEE_OTHER]: true;
  readonly url: string;
  readonly result: Result | undefined;
}
const SEE_OTHER = Symbol.for('respond-async.seeOther');

/**
 * Return `seeOther(url)` from a handler to make the status URL of the complete job redirect there
 * (`303 See Other`), the Azure Async Request-Reply way. `result` is still stored and served in the document.
 *
 * `url` is checked when the handler returns it, as a `Location` header must be writable: non-ASCII characters and
 * spaces are percent-encoded as UTF-8 (`/files/报告.pdf` → `/files/%E6%8A%A5%E5%91%8A.pdf`; an absolute URL is
 * serialised the WHATWG URL way, its host in punycode), `%XX` escapes already there are kept. An empty URL, or
 * one with a control character (CR, LF, NUL...), fails the job at once with code
 * `ERR_RESPOND_ASYNC_INVALID_REDIRECT` (not retried), rather than storing an answer no status poll could write.
 * @example
 * jobs.define('export', async () => { const file = await render(); return seeOther(`/files/${file.id}`) });
 */
export function seeOther<Result = undefined>(url: string, result?: Result): SeeOther<Result> {
  return { [SEE_OTHER]: true, url, result };
}

function isSeeOther(value: unknown): value is SeeOther {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[SEE_OTHER] === true;
}

interface Running {
  job: JobRecord;
  controller: AbortController;
  /** Its handler still runs (holds one of `concurrency` slots); false once only the final write is left. */
  active: boolean;
}

const DEFAULTS = {
  concurrency: 10,
  leaseMs: 30_000,
  pollIntervalMs: 1000,
  retentionMs: 24 * 60 * 60 * 1000,
  maxResultBytes: 1024 * 1024,
};

/**
 * The job runtime: registers handlers, submits jobs to the store, and runs them in this process.
 * @example
 * const jobs = createJobs({ store: new MemoryStore(), concurrency: 4 });
 * const report = jobs.define('report', async (req: RequestSnapshot<{ steps: number }>, ctx) => {
 *   await ctx.progress(50);
 *   return { ok: true };
 * });
 */
export class Jobs {
  readonly store: JobStore;
  readonly workerId: string;
  readonly options: Readonly<Required<Omit<JobsOptions, 'store' | 'logger'>>>;
  readonly logger: Logger;
  readonly #definitions = new Map<string, JobDefinition<never, unknown>>();
  readonly #running = new Map<string, Running>();
  /** Entries of `#running` whose handler runs: what `concurrency` limits. */
  #active = 0;
  /** Slots held for jobs being created already claimed by this worker, or being claimed now. */
  #reserved = 0;
  /**
   * Due jobs may be waiting in the store. False once a claim came back short and nothing has been queued since, as
   * far as this process knows: then new submits may be taken at once (createClaimed) without jumping the queue.
   */
  #queueMayHoldJobs = true;
  /** Submits whose job is being created claimed by this worker: close() waits for them to start. */
  readonly #landing = new Set<Promise<void>>();
  #wakeScheduled = false;
  readonly #changes = new EventEmitter();
  /** Listeners registered by watch(): while none, publishing a change costs nothing (the accept path). */
  #watchers = 0;
  #ready: Promise<void> | undefined;
  /** The store's init() has resolved: submit need not wait on `#ready` again. */
  #isReady = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #pumping = false;
  #pumpDone: Promise<void> = Promise.resolve();
  #pumpAgain = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #purgeTimer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  readonly #idle = new Set<() => void>();
  readonly #closingController = new AbortController();
  readonly #background: Array<{ start(): void; stop(): Promise<void> }> = [];
  /** Background store failures, logged once per outage. */
  readonly #outages: OutageLog;

  constructor(options: JobsOptions = {}) {
    const store = options.store ?? new MemoryStore();
    assertJobStore(store);
    this.store = store;
    this.logger = options.logger ?? console;
    this.#outages = new OutageLog(this.logger);
    this.options = {
      concurrency: positive('concurrency', options.concurrency ?? DEFAULTS.concurrency),
      worker: options.worker ?? true,
      leaseMs: positive('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs),
      pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs ?? DEFAULTS.pollIntervalMs),
      retentionMs: positive('retentionMs', options.retentionMs ?? DEFAULTS.retentionMs),
      maxResultBytes: positive('maxResultBytes', options.maxResultBytes ?? DEFAULTS.maxResultBytes),
    };
    this.workerId = `${hostname()}:${process.pid}:${newJobId().slice(0, 8)}`;
    this.#changes.setMaxListeners(0);
  }

  /**
   * Register a handler under a stable name. Any process that defines the same name can run the job.
   * The handler's input type flows to the route and its result type to the status document.
   */
  define<Input = unknown, Result = unknown>(
    name: string,
    handler: JobHandler<Input, Result>,
    options: DefineOptions = {},
  ): JobDefinition<Input, Awaited<Result> extends SeeOther<infer R> ? R : Awaited<Result>> {
    if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
      throw new TypeError('respond-async: a job name must be a non-empty string of at most 200 characters');
    }
    if (typeof handler !== 'function')
      throw new TypeError(`respond-async: the handler of job "${name}" must be a function`);
    if (this.#definitions.has(name)) throw new TypeError(`respond-async: job "${name}" is already defined`);
    const definition = {
      name,
      handler,
      options: {
        ...options,
        attempts: positive('attempts', options.attempts ?? 3),
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: positive('timeoutMs', options.timeoutMs) }),
      },
    } as JobDefinition<Input, never>;
    this.#definitions.set(name, definition as unknown as JobDefinition<never, unknown>);
    if (this.options.worker) this.#startWorker();
    return definition as never;
  }

  /** The definition registered under `name`, if any. */
  definition(name: string): JobDefinition | undefined {
    return this.#definitions.get(name) as JobDefinition | undefined;
  }

  /** Resolves once the store is ready (migrations run). Called for you before the first store use. */
  ready(): Promise<void> {
    this.#ready ??= this.store.init().then(
      () => {
        this.#isReady = true;
      },
      (error: unknown) => {
        this.#ready = undefined;
        throw storeError(this.store.kind, error);
      },
    );
    return this.#ready;
  }

  /**
   * Queue a job. Resolves once the store holds it durably. With an idempotency key that is already bound,
   * resolves to the existing job with `created: false`.
   * @throws QueueFullError when the store is full, StoreUnavailableError when it cannot be reached.
   */
  async submit<Input>(
    definition: JobDefinition<Input, unknown> | string,
    input: Input,
    options: SubmitOptions = {},
  ): Promise<{ job: JobRecord; created: boolean }> {
    const name = typeof definition === 'string' ? definition : definition.name;
    const attempts = this.#attempts(name);
    if (this.#closing) throw new StoreUnavailableError(this.store.kind, new Error('the runtime is closing'));
    if (!this.#isReady) await this.ready();
    const job = newJob(name, attempts, input, options);
    const takeNow = this.#reserveForSubmit();
    if (!takeNow) {
      let result: CreateResult;
      try {
        result = await this.store.create(job);
      } catch (error) {
        throw storeError(this.store.kind, error);
      }
      return this.#submitted(result, false);
    }
    // Until the job is stored and started, close() waits for it, so that it is drained like the other running jobs.
    let landed!: () => void;
    const landing = new Promise<void>((resolve) => {
      landed = resolve;
    });
    this.#landing.add(landing);
    try {
      let result: CreateResult;
      try {
        result = await this.#create(() => takeNow(job, { workerId: this.workerId, leaseMs: this.options.leaseMs }));
      } finally {
        this.#reserved -= 1;
      }
      return this.#submitted(result, true);
    } finally {
      this.#landing.delete(landing);
      landed();
    }
  }

  /**
   * `submit()` done at once, for a store that creates synchronously (`JobStore.createNow`: the MemoryStore), so that
   * the caller need not wait a turn of the microtask queue: the result, or `undefined` when the caller must
   * `await submit()` instead (another store, the runtime not ready yet or closing).
   * @throws as `submit()` does.
   */
  submitNow<Input>(
    definition: JobDefinition<Input, unknown> | string,
    input: Input,
    options: SubmitOptions = {},
  ): { job: JobRecord; created: boolean } | undefined {
    const createNow = this.store.createNow;
    // A store that can create jobs already claimed goes through submit(), which may hand the job to this worker.
    if (createNow === undefined || this.store.createClaimed !== undefined || !this.#isReady || this.#closing) {
      return undefined;
    }
    const name = typeof definition === 'string' ? definition : definition.name;
    const job = newJob(name, this.#attempts(name), input, options);
    let result: CreateResult;
    try {
      result = createNow.call(this.store, job);
    } catch (error) {
      throw storeError(this.store.kind, error);
    }
    return this.#submitted(result, false);
  }

  /** The attempts of the job named `name`, which must be defined in this process. */
  #attempts(name: string): number {
    const known = this.#definitions.get(name);
    if (!known) throw new TypeError(`respond-async: job "${name}" is not defined in this process`);
    return known.options.attempts;
  }

  async #create(create: () => Promise<CreateResult>): Promise<CreateResult> {
    try {
      return await create();
    } catch (error) {
      throw storeError(this.store.kind, error);
    }
  }

  /** After a create: start the job if it was created claimed by this worker, else announce it to the worker. */
  #submitted(result: CreateResult, claimed: boolean): CreateResult {
    if (result.created) {
      if (claimed && result.job.status === 'processing' && result.job.leaseOwner === this.workerId) {
        this.#start(result.job);
      } else {
        // Not running here (it was just made): only watchers, if any, need to hear of it.
        if (this.#watchers > 0) this.#publish(result.job);
        this.#queueMayHoldJobs = true;
        this.#wake();
      }
    }
    return result;
  }

  /**
   * A slot for a job about to be submitted, when this process runs jobs, has a slot free, and knows of no due job
   * waiting in the store (so the new job jumps no queue): the store's `createClaimed`, bound, or undefined.
   */
  #reserveForSubmit(): JobStore['createClaimed'] {
    const createClaimed = this.store.createClaimed;
    if (!createClaimed || !this.options.worker || this.#closing || this.#queueMayHoldJobs) return undefined;
    const { concurrency } = this.options;
    if (this.#active + this.#reserved >= concurrency || this.#running.size + this.#reserved >= 2 * concurrency) {
      return undefined;
    }
    this.#reserved += 1;
    return createClaimed.bind(this.store);
  }

  /** The job, or undefined when unknown or expired. */
  async get(id: string): Promise<JobRecord | undefined> {
    await this.ready();
    return this.#storeCall(() => this.store.get(id));
  }

  /** The owner's jobs, newest first (the order of `JobStore.list`): at most `limit`, after `before` when given. */
  async list(owner: string | null, limit = 20, before?: ListPosition): Promise<JobRecord[]> {
    await this.ready();
    return this.#storeCall(() => this.store.list(before === undefined ? { owner, limit } : { owner, limit, before }));
  }

  /**
   * How many unexpired jobs `owner` holds, counted no further than `upTo` (for a quota): the store's
   * `countByOwner`, or the length of a listing when it has none.
   */
  async countByOwner(owner: string, upTo: number): Promise<number> {
    await this.ready();
    const { store } = this;
    if (store.countByOwner) return this.#storeCall(() => store.countByOwner!(owner, upTo));
    return (await this.list(owner, upTo)).length;
  }

  /**
   * The unexpired job bound to `owner` and `idempotencyKey`: the store's `getByKey`, or else looked for among the
   * owner's `within` newest jobs.
   */
  async getByKey(owner: string, idempotencyKey: string, within: number): Promise<JobRecord | undefined> {
    await this.ready();
    const { store } = this;
    if (store.getByKey) return this.#storeCall(() => store.getByKey!(owner, idempotencyKey));
    return (await this.list(owner, within)).find((job) => job.idempotencyKey === idempotencyKey);
  }

  /** Cancel a job: a queued one ends at once, a running one has its signal aborted. */
  async cancel(id: string): Promise<{ outcome: CancelOutcome; job?: JobRecord }> {
    await this.ready();
    const result = await this.#storeCall(() => this.store.cancel(id, { retentionMs: this.options.retentionMs }));
    if (result.job && result.outcome !== 'finished') this.#publish(result.job);
    if (result.outcome === 'requested') this.#running.get(id)?.controller.abort(new CanceledError());
    return result;
  }

  /**
   * Call `listener` on every change of job `id` made by this process, or reported by the store's change
   * feed, and with `null` at least every `pollIntervalMs` (every 5 s where the store has a feed) so that
   * changes made by other processes are seen. Returns the function that stops listening.
   */
  watch(id: string, listener: (change: JobChange | null) => void): () => void {
    const onChange = (change: JobChange) => listener(change);
    this.#changes.on(id, onChange);
    this.#watchers += 1;
    let watching = true;
    // With a change feed the poll is only a safety net (e.g. while the feed reconnects).
    const every = this.store.subscribe ? Math.max(5000, this.options.pollIntervalMs) : this.options.pollIntervalMs;
    const timer = setInterval(() => listener(null), every);
    timer.unref();
    return () => {
      clearInterval(timer);
      this.#changes.off(id, onChange);
      if (watching) this.#watchers -= 1;
      watching = false;
    };
  }

  /** Listeners currently registered by `watch()` (for leak checks). */
  watcherCount(): number {
    return this.#changes.eventNames().reduce((n, name) => n + this.#changes.listenerCount(name), 0);
  }

  /** Resolve with the job once it is terminal, or with its latest state after `timeoutMs`. */
  async waitFor(id: string, timeoutMs: number, signal?: AbortSignal): Promise<JobRecord | undefined> {
    let job = await this.get(id);
    if (!job || isTerminal(job.status) || timeoutMs <= 0) return job;
    return new Promise<JobRecord | undefined>((resolve) => {
      let settled = false;
      const finish = (value: JobRecord | undefined) => {
        if (settled) return;
        settled = true;
        stop();
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      };
      const check = () => {
        this.get(id).then(
          (latest) => {
            job = latest ?? job;
            if (!latest || isTerminal(latest.status)) finish(latest);
          },
          () => {},
        );
      };
      const onAbort = () => finish(job);
      const stop = this.watch(id, (change) => {
        if (change === null || isTerminal(change.status)) check();
      });
      const timer = setTimeout(() => finish(job), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }

  /** Aborts when `close()` starts: long-lived work tied to the runtime (event streams) ends on it. */
  get closing(): AbortSignal {
    return this.#closingController.signal;
  }

  /** Jobs running in this process now. */
  get runningCount(): number {
    return this.#running.size;
  }

  /**
   * Stop claiming, let running jobs finish up to `timeoutMs`, then abort their signals and hand their leases
   * back so another process runs them. Closes the store.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closed ??= this.#close(options.timeoutMs ?? 10_000);
    return this.#closed;
  }

  /** Register a background loop (webhook deliveries) that starts with the worker and stops on close. @internal */
  addBackground(task: { start(): void; stop(): Promise<void> }): void {
    this.#background.push(task);
    if (this.#pollTimer) task.start();
  }

  /** Publish a change to local watchers. @internal */
  publish(job: Pick<JobRecord, 'id' | 'status' | 'seq'>): void {
    this.#publish(job);
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    this.#closingController.abort();
    clearInterval(this.#pollTimer);
    clearInterval(this.#purgeTimer);
    await Promise.allSettled(this.#background.map((task) => task.stop()));
    // A claim in flight, or a submit creating a job claimed by this worker, may still hand us jobs: let them land
    // so they are drained like the others.
    await this.#pumpDone;
    await Promise.all([...this.#landing]);
    if (this.#running.size > 0) {
      const drained = new Promise<void>((resolve) => this.#idle.add(resolve));
      const deadline = new Promise<'deadline'>((resolve) => setTimeout(resolve, timeoutMs, 'deadline').unref());
      if ((await Promise.race([drained, deadline])) === 'deadline') {
        for (const running of this.#running.values()) running.controller.abort(new ShutdownError());
        await drained;
      }
    }
    clearInterval(this.#heartbeatTimer);
    await this.#unsubscribe?.().catch(() => {});
    await this.store.close();
  }

  #startWorker(): void {
    if (this.#pollTimer || this.#closing) return;
    this.#pollTimer = setInterval(() => {
      // Jobs no notification announces (delayed retries coming due, lapsed leases) are found here.
      this.#queueMayHoldJobs = true;
      this.#wake();
    }, this.options.pollIntervalMs);
    this.#pollTimer.unref();
    // #heartbeat and #purge catch every failure themselves: a timer never leaves a rejected promise behind.
    this.#heartbeatTimer = setInterval(() => void this.#heartbeat(), Math.max(10, this.options.leaseMs / 3));
    this.#heartbeatTimer.unref();
    this.#purgeTimer = setInterval(() => void this.#purge(), Math.min(60_000, this.options.retentionMs));
    this.#purgeTimer.unref();
    for (const task of this.#background) task.start();
    void this.ready()
      .then(async () => {
        if (this.store.subscribe && !this.#closing) {
          this.#unsubscribe = await this.store.subscribe((change) => this.#onRemoteChange(change));
        }
      })
      .catch((error: unknown) => this.logger.error('respond-async: store not ready; will retry', error));
    queueMicrotask(() => this.#wake());
  }

  #onRemoteChange(change: JobChange): void {
    this.#changes.emit(change.id, change);
    if (change.status === 'queued') {
      this.#queueMayHoldJobs = true;
      this.#wake();
    }
    const running = this.#running.get(change.id);
    // A change this process did not make to a job it runs: maybe a cancel asked for on another instance.
    if (running && change.status === 'processing' && change.seq > running.job.seq) {
      // On failure the next heartbeat's renew reports the cancel request instead.
      this.store.get(change.id).then(
        (job) => {
          this.#outages.recovered('get');
          if (job?.cancelRequested) running.controller.abort(new CanceledError());
        },
        (error: unknown) => this.#outages.failed('get', 'respond-async: reading a changed job failed', error),
      );
    }
  }

  #publish(job: Pick<JobRecord, 'id' | 'status' | 'seq'>): void {
    const running = this.#running.get(job.id);
    if (running && job.seq > running.job.seq) running.job.seq = job.seq;
    if (this.#watchers > 0 && this.#changes.listenerCount(job.id) > 0) {
      this.#changes.emit(job.id, { id: job.id, status: job.status, seq: job.seq });
    }
  }

  /** Claim and start jobs while there are free slots. Never runs twice at once. */
  #wake(): void {
    if (this.#closing || !this.options.worker || this.#definitions.size === 0) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    this.#pumpDone = this.#pump().finally(() => {
      this.#pumping = false;
      if (this.#pumpAgain) {
        this.#pumpAgain = false;
        this.#wake();
      }
    });
  }

  async #pump(): Promise<void> {
    try {
      await this.ready();
      const names = [...this.#definitions.keys()];
      const { concurrency } = this.options;
      // Where jobs can be created claimed, the store announces every queued job: a claim is needed only when one
      // may be waiting. Elsewhere the worker looks each time a slot frees.
      const gated = this.store.createClaimed !== undefined && this.#unsubscribe !== undefined;
      while (!this.#closing) {
        if (gated && !this.#queueMayHoldJobs) return;
        // A slot frees when its handler returns; the final writes still in flight are bounded by `concurrency`
        // too, so a slow store cannot make them pile up.
        const free = Math.min(concurrency - this.#active, 2 * concurrency - this.#running.size) - this.#reserved;
        if (free <= 0) return;
        this.#queueMayHoldJobs = false;
        this.#reserved += free;
        let claimed: JobRecord[];
        try {
          claimed = await this.store.claim({
            names,
            workerId: this.workerId,
            limit: free,
            leaseMs: this.options.leaseMs,
          });
        } finally {
          this.#reserved -= free;
        }
        this.#outages.recovered('claim');
        for (const job of claimed) this.#start(job);
        if (claimed.length === free) this.#queueMayHoldJobs = true;
        else return;
      }
    } catch (error) {
      this.#queueMayHoldJobs = true;
      this.#outages.failed('claim', 'respond-async: claiming jobs failed; will retry', error);
    }
  }

  /** Drop expired jobs; a failure is retried on the next tick. */
  async #purge(): Promise<void> {
    try {
      await this.store.purgeExpired();
      this.#outages.recovered('purge');
    } catch (error) {
      this.#outages.failed('purge', 'respond-async: purging expired jobs failed; will retry', error);
    }
  }

  #start(job: JobRecord): void {
    // The job may still be in #running here: its previous attempt ended (the retry was claimed before that run
    // was cleaned up), or its lease lapsed unrenewed and this process claimed it back. Either way that run is
    // over: abort it as a lost lease, and let only the new run own the entry.
    this.#running.get(job.id)?.controller.abort(new LeaseLostError());
    const controller = new AbortController();
    const entry: Running = { job, controller, active: true };
    this.#running.set(job.id, entry);
    this.#active += 1;
    this.#publish(job);
    this.#run(entry)
      .catch((error: unknown) => this.logger.error(`respond-async: running job ${job.id} failed`, error))
      .finally(() => {
        this.#handlerDone(entry);
        if (this.#running.get(job.id) === entry) this.#running.delete(job.id);
        if (this.#running.size === 0) for (const resolve of this.#idle) resolve();
        this.#wake();
      });
  }

  /**
   * The handler of `entry` is over: its slot is free for the next job while its final write goes to the store.
   * The worker looks for more work once this turn's handlers are done, so that a store can send their final
   * writes and the next claim together.
   */
  #handlerDone(entry: Running): void {
    if (!entry.active) return;
    entry.active = false;
    this.#active -= 1;
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      this.#wake();
    });
  }

  async #run(entry: Running): Promise<void> {
    const { job, controller } = entry;
    const definition = this.#definitions.get(job.name);
    if (!definition) return; // claim filters by name; unreachable
    const { attempts, timeoutMs } = definition.options;
    const retentionMs = this.options.retentionMs;
    if (job.attempt > attempts) {
      // Leases lapsed (crashed processes) until the attempts ran out.
      const error = { message: 'The job failed', code: 'ERR_RESPOND_ASYNC_ATTEMPTS_EXHAUSTED' };
      this.#handlerDone(entry);
      await this.#settle(
        () => this.store.fail(job.id, this.workerId, { error, retryAt: null, retentionMs }),
        controller.signal,
      );
      return;
    }
    if (job.cancelRequested) {
      this.#handlerDone(entry);
      await this.#settle(() => this.store.markCanceled(job.id, this.workerId, { retentionMs }), controller.signal);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => controller.abort(new TimeoutError(timeoutMs)), timeoutMs);
    }
    // One progress write in flight per job, the latest value next: a handler that reports without awaiting
    // cannot flood the store (or exhaust a connection pool).
    const writeProgress = latestWins<{ value: number; text: string | null }>(
      ({ value, text }) => this.#write('progress', () => this.store.progress(job.id, this.workerId, value, text)),
      () => !entry.active || controller.signal.aborted,
    );
    const ctx: JobContext = {
      jobId: job.id,
      attempt: job.attempt,
      owner: job.owner,
      signal: controller.signal,
      progress: (percent, message) => {
        if (controller.signal.aborted) return Promise.resolve();
        const value = Math.min(100, Math.max(0, Number.isFinite(percent) ? percent : 0));
        const text = message === undefined ? null : String(message).slice(0, 1000);
        return writeProgress({ value, text });
      },
    };
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      const value = await raceAbort(definition.handler(job.input as never, ctx), controller.signal);
      outcome = { ok: true, value };
    } catch (error) {
      outcome = { ok: false, error };
    } finally {
      clearTimeout(timer);
    }
    this.#handlerDone(entry);
    const reason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;
    if (reason instanceof ShutdownError) {
      await this.store.release(job.id, this.workerId).catch(() => {});
      return;
    }
    if (reason instanceof LeaseLostError) return;
    if (reason instanceof CanceledError) {
      await this.#settle(() => this.store.markCanceled(job.id, this.workerId, { retentionMs }), controller.signal);
      return;
    }
    if (outcome.ok && !(reason instanceof TimeoutError)) {
      const value = isSeeOther(outcome.value) ? outcome.value.result : outcome.value;
      const resultUrl = isSeeOther(outcome.value) ? redirectUrl(outcome.value.url) : null;
      const size = jsonSize(value);
      if (resultUrl === undefined) {
        outcome = {
          ok: false,
          error: new JobError('The handler returned seeOther() with a URL that cannot be sent as a Location', {
            code: 'ERR_RESPOND_ASYNC_INVALID_REDIRECT',
            retry: false,
          }),
        };
      } else if (size <= this.options.maxResultBytes) {
        await this.#settle(
          () => this.store.complete(job.id, this.workerId, { result: value, resultUrl, retentionMs }),
          controller.signal,
        );
        return;
      } else {
        outcome = {
          ok: false,
          error: Number.isNaN(size)
            ? new UnrecoverableError('The result is not JSON-serialisable')
            : new JobError(`The result is larger than ${this.options.maxResultBytes} bytes`, {
                code: 'ERR_RESPOND_ASYNC_RESULT_TOO_LARGE',
                retry: false,
              }),
        };
      }
    }
    const error = outcome.ok ? reason : reason instanceof TimeoutError ? reason : outcome.error;
    if (!(error instanceof RespondAsyncError || error instanceof JobError)) {
      this.logger.error(`respond-async: job ${job.name} ${job.id} attempt ${job.attempt} failed`, error);
    }
    const retry = (error as { retry?: unknown } | null)?.retry !== false && job.attempt < attempts;
    const retryAt = retry ? Date.now() + backoffDelay(definition.options.backoff, job.attempt) : null;
    await this.#settle(
      () => this.store.fail(job.id, this.workerId, { error: publicError(error), retryAt, retentionMs }),
      controller.signal,
    );
  }

  /**
   * The write that ends an attempt (complete, fail, cancel). While the store cannot be reached (a database restart)
   * it is retried, backing off up to 2 s, for as long as the lease can still be ours: the job stays in `#running`,
   * so the heartbeat keeps renewing its lease once the store is back, and a job that finished during an outage is
   * recorded instead of being run again. Stops at shutdown or when the heartbeat finds the lease lost; the lease
   * then lapses and the job runs again elsewhere (at least once).
   */
  async #settle(write: () => Promise<JobRecord | undefined>, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.options.leaseMs;
    for (let delay = 100; ; delay = Math.min(2 * delay, 2000)) {
      try {
        const job = await write();
        this.#outages.recovered('settle');
        if (job) this.#publish(job);
        return;
      } catch (error) {
        const reason: unknown = signal.reason;
        const givenUp = signal.aborted && (reason instanceof ShutdownError || reason instanceof LeaseLostError);
        if (givenUp || Date.now() + delay >= deadline) {
          this.#outages.failed(
            'settle',
            'respond-async: store write failed; the job will be retried when its lease lapses',
            error,
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** A store write by the worker: publishes the change; a failure is logged once per outage of `kind`. */
  async #write(kind: string, write: () => Promise<JobRecord | undefined>): Promise<void> {
    try {
      const job = await write();
      this.#outages.recovered(kind);
      if (!job) return;
      this.#publish(job);
      // A cancel asked for elsewhere shows on the record the write returns.
      if (job.cancelRequested && job.status === 'processing') {
        this.#running.get(job.id)?.controller.abort(new CanceledError());
      }
    } catch (error) {
      this.#outages.failed(kind, `respond-async: store write (${kind}) failed; the next one tries again`, error);
    }
  }

  async #heartbeat(): Promise<void> {
    if (this.#running.size === 0) return;
    const ids = [...this.#running.keys()];
    try {
      const states = await this.store.renew(ids, this.workerId, this.options.leaseMs);
      this.#outages.recovered('renew');
      for (const state of states) {
        const running = this.#running.get(state.id);
        if (!running) continue;
        if (!state.held) running.controller.abort(new LeaseLostError());
        else if (state.cancelRequested) running.controller.abort(new CanceledError());
      }
    } catch (error) {
      this.#outages.failed('renew', 'respond-async: renewing leases failed', error);
    }
  }

  /** Map store failures other than a full queue to StoreUnavailableError. */
  async #storeCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw storeError(this.store.kind, error);
    }
  }
}

/**
 * A store failure as callers see it: a full queue and a permanent failure (a schema too new, JSON refused) as they
 * are, anything else as StoreUnavailableError (503, try again later).
 */
function storeError(kind: string, error: unknown): Error {
  if (error instanceof QueueFullError || error instanceof StoreUnavailableError || error instanceof InputError) {
    return error;
  }
  if (error instanceof RespondAsyncError && error.permanent) return error;
  return new StoreUnavailableError(kind, error);
}

/** Reason a handler's signal aborts when its lease lapsed and another worker may run the job. @internal */
class LeaseLostError extends RespondAsyncError {
  constructor() {
    super('ERR_RESPOND_ASYNC_LEASE_LOST', 'The job lease was lost');
    this.name = 'LeaseLostError';
  }
}

/** Create the job runtime. See `Jobs`. */
export function createJobs(options: JobsOptions = {}): Jobs {
  return new Jobs(options);
}

/** The error as clients may see it: the message only when the error is marked public. @internal */
export function publicError(error: unknown): JobErrorInfo {
  if (error instanceof TimeoutError) return { message: 'The job timed out', code: error.code };
  const candidate = error as { message?: unknown; code?: unknown; expose?: unknown } | null;
  if (candidate && candidate.expose === true && typeof candidate.message === 'string') {
    return typeof candidate.code === 'string'
      ? { message: candidate.message, code: candidate.code }
      : { message: candidate.message };
  }
  return { message: 'The job failed' };
}

/** Settle with the handler, or reject as soon as the signal aborts (a handler that ignores its signal is abandoned). */
function raceAbort<T>(work: Promise<T> | T, signal: AbortSignal): Promise<T> {
  if (!(work instanceof Promise)) return Promise.resolve(work);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * `write` with at most one call in flight: a value given meanwhile waits for it, and only the latest waiting value
 * is written (once `over()` is true it is dropped). Each returned promise settles when its value, or a later one,
 * has been handled; none rejects.
 */
function latestWins<T>(write: (value: T) => Promise<void>, over: () => boolean): (value: T) => Promise<void> {
  let inFlight = false;
  let next: { value: T; done: () => void; promise: Promise<void> } | undefined;
  const start = (value: T): Promise<void> => {
    inFlight = true;
    return write(value)
      .catch(() => {})
      .then(() => {
        const queued = next;
        next = undefined;
        if (queued && !over()) {
          void start(queued.value).then(queued.done);
        } else {
          inFlight = false;
          queued?.done();
        }
      });
  };
  return (value) => {
    if (!inFlight) return start(value);
    if (next) {
      next.value = value;
      return next.promise;
    }
    let done!: () => void;
    const promise = new Promise<void>((resolve) => {
      done = resolve;
    });
    next = { value, done, promise };
    return promise;
  };
}

/**
 * The `Location` a `seeOther()` URL is sent as: non-ASCII characters and spaces percent-encoded as UTF-8 (an
 * absolute URL serialised by WHATWG URL), or undefined when it cannot be one (empty, a control character, a lone
 * surrogate, an absolute URL that does not parse).
 */
function redirectUrl(url: unknown): string | undefined {
  if (typeof url !== 'string' || url.length === 0 || hasControlCharacter(url)) return undefined;
  try {
    if (/^[a-z][a-z0-9+.-]*:/i.test(url)) return new URL(url).href;
    return url.replace(/[^\u0021-\u007e]+/g, (chars) => encodeURIComponent(chars));
  } catch {
    return undefined;
  }
}

/** Whether `text` holds a C0 control character or DEL, which no header value may carry. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** Bytes of JSON, or NaN when `value` cannot be serialised (a cycle, a BigInt). */
function jsonSize(value: unknown): number {
  if (value === undefined) return 0;
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? '');
  } catch {
    return Number.NaN;
  }
}

/** The job a submit asks the store to create. */
function newJob(name: string, maxAttempts: number, input: unknown, options: SubmitOptions): NewJob {
  return {
    id: newJobId(),
    name,
    input,
    owner: options.owner || null,
    idempotencyKey: options.idempotencyKey ?? null,
    requestHash: options.requestHash ?? null,
    maxAttempts,
    callbackUrl: options.callbackUrl ?? null,
    inputJson: options.inputJson,
  };
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new TypeError(`respond-async: \`${name}\` must be a positive number, got ${String(value)}`);
  }
  return value;
}
