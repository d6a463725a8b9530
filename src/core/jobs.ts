// The runtime's front: createJobs(), define(), submit, get, list, cancel, watch, close; the worker runs the jobs.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { MemoryStore } from '../stores/memory.js';
import type { Backoff } from './backoff.js';
import { CanceledError, InputError, QueueFullError, RespondAsyncError, StoreUnavailableError } from './errors.js';
import { newJobId } from './ids.js';
import { OutageLog } from './outage-log.js';
import type { SeeOther } from './outcome.js';
import {
  type AdminOutcome,
  assertJobStore,
  type CancelOutcome,
  type CreateResult,
  type JobStore,
  type ListPosition,
} from './store.js';
import { Telemetry } from './telemetry.js';
import type { JobChange, JobEvents, JobHandler, JobRecord, NewJob } from './types.js';
import { isTerminal } from './types.js';
import { Worker } from './worker.js';

/**
 * Where the runtime logs. `console` fits (message first), and so does a pino logger (fields first): see
 * `JobsOptions.logFormat` for how they are told apart.
 */
export interface Logger {
  error(message: string, details?: unknown): void;
  warn?(message: string, details?: unknown): void;
}

/** The structured fields of a log line about a job. */
export interface LogFields {
  jobId?: string;
  jobName?: string;
  attempt?: number;
  traceId?: string;
}

/** The runtime's logger: the user's, called the way it expects, with structured fields where there are some. @internal */
export interface FieldLogger extends Logger {
  error(message: string, details?: unknown, fields?: LogFields): void;
  warn?(message: string, details?: unknown, fields?: LogFields): void;
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
  /**
   * Keep the stack of each failed attempt in the job's history, next to its message and code, for operators (the
   * admin API and dashboard show it; clients never see it). Default false: stacks stay in the server's log.
   */
  historyStacks?: boolean;
  /** Where handler errors are reported (the full error, stack included, stays on the server). Default `console`. */
  logger?: Logger;
  /**
   * How `logger` is called. `'message'`: `logger.error(message, details)`, as `console` takes it. `'fields'`:
   * `logger.error({ ...fields, err }, message)`, as pino takes it, with `jobId`, `jobName`, `attempt` and `traceId`
   * on lines about a job. Default `'auto'`: `'fields'` when the logger has both `child()` and `bindings()` (pino),
   * `'message'` otherwise.
   */
  logFormat?: 'auto' | 'fields' | 'message';
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

/** The event of `#changes` that `watchAll()` listeners hear: every job's changes. */
const ALL_JOBS = Symbol('all jobs');

const DEFAULTS = {
  concurrency: 10,
  leaseMs: 30_000,
  pollIntervalMs: 1000,
  retentionMs: 24 * 60 * 60 * 1000,
  maxResultBytes: 1024 * 1024,
};

/**
 * The job runtime: registers handlers, submits jobs to the store, serves reads, cancels and watches, and (unless
 * `worker: false`) runs jobs in this process through its `Worker`.
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
  readonly options: Readonly<Required<Omit<JobsOptions, 'store' | 'logger' | 'logFormat'>>>;
  /** The `logger` option, called the way it expects (see `logFormat`). */
  readonly logger: FieldLogger;
  readonly #definitions = new Map<string, JobDefinition<never, unknown>>();
  /** Runs jobs in this process; undefined with `worker: false`. */
  readonly #worker: Worker | undefined;
  readonly #changes = new EventEmitter();
  /** Listeners registered by watch(): while none, publishing a change costs nothing (the accept path). */
  #watchers = 0;
  /** Settles once the store reports every change (see `#addWatcher`); undefined when it does, or no watchers. */
  #watching: Promise<void> | undefined;
  #ready: Promise<void> | undefined;
  /** The store's init() has resolved: submit need not wait on `#ready` again. */
  #isReady = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  readonly #closingController = new AbortController();
  readonly #background: Array<{ start(): void; stop(): Promise<void> }> = [];
  /** Background store failures, logged once per outage. */
  readonly #outages: OutageLog;
  /** OpenTelemetry spans and metrics (no-ops without `@opentelemetry/api` or a registered SDK). @internal */
  readonly telemetry = new Telemetry();
  /** Listeners of `on()`, by event. */
  readonly #listeners = new Map<keyof JobEvents, Set<(event: never) => void>>();

  constructor(options: JobsOptions = {}) {
    const store = options.store ?? new MemoryStore();
    assertJobStore(store);
    this.store = store;
    this.logger = fieldLogger(options.logger ?? console, options.logFormat ?? 'auto');
    this.#outages = new OutageLog(this.logger);
    this.options = {
      concurrency: positive('concurrency', options.concurrency ?? DEFAULTS.concurrency),
      worker: options.worker ?? true,
      leaseMs: positive('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs),
      pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs ?? DEFAULTS.pollIntervalMs),
      retentionMs: positive('retentionMs', options.retentionMs ?? DEFAULTS.retentionMs),
      maxResultBytes: positive('maxResultBytes', options.maxResultBytes ?? DEFAULTS.maxResultBytes),
      historyStacks: options.historyStacks ?? false,
    };
    this.workerId = `${hostname()}:${process.pid}:${randomBytes(6).toString('base64url')}`;
    this.#changes.setMaxListeners(0);
    if (!this.options.worker && store.kind === 'memory') {
      (this.logger.warn ?? this.logger.error).call(
        this.logger,
        'respond-async: `worker: false` with a MemoryStore: no process can run these jobs; they stay queued',
      );
    }
    this.#worker = this.options.worker
      ? new Worker({
          store,
          workerId: this.workerId,
          options: this.options,
          logger: this.logger,
          outages: this.#outages,
          telemetry: this.telemetry,
          definitions: this.#definitions,
          ready: () => this.ready(),
          subscribed: () => this.#unsubscribe !== undefined,
          publish: (job) => this.#publish(job),
          emit: (event, payload) => this.#emit(event, payload),
        })
      : undefined;
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
    this.#startWorker();
    return definition as never;
  }

  /**
   * Run this process as a worker until `close()`: resolves once the store is ready and the worker looks for jobs,
   * and keeps the process alive (the runtime's other timers do not) so that jobs submitted later, by this process
   * or another, and retries coming due, run here. Define the jobs first.
   * @example
   * const jobs = createJobs({ store: new SqliteStore({ path: 'jobs.db' }) });
   * jobs.define('report', report);
   * await jobs.start();
   * process.on('SIGTERM', () => void jobs.close());
   * @throws TypeError with `worker: false`; StoreUnavailableError when the store cannot be reached or is closing.
   */
  async start(): Promise<void> {
    const worker = this.#worker;
    if (!worker) throw new TypeError('respond-async: start() runs jobs, but this runtime has `worker: false`');
    await this.ready();
    if (this.#closing) throw new StoreUnavailableError(this.store.kind, new Error('the runtime is closing'));
    this.#startWorker();
    worker.keepAlive();
  }

  /** The definition registered under `name`, if any. */
  definition(name: string): JobDefinition | undefined {
    return this.#definitions.get(name) as JobDefinition | undefined;
  }

  /**
   * Resolves once the store is ready (migrations run) and, where the store has a change feed (PostgreSQL
   * LISTEN/NOTIFY), this process hears it. Called for you before the first store use.
   */
  ready(): Promise<void> {
    this.#ready ??= this.store.init().then(
      async () => {
        await this.#listen();
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
    const known = this.#definitions.get(name);
    if (!known) throw new TypeError(`respond-async: job "${name}" is not defined in this process`);
    if (this.#closing) throw new StoreUnavailableError(this.store.kind, new Error('the runtime is closing'));
    if (!this.#isReady) await this.ready();
    const job = newJob(name, known.options.attempts, input, options);
    // The PRODUCER span, in the caller's context (a wrapped route's request span): its context goes with the job.
    const send = this.telemetry.send(name, job.id);
    job.traceContext = send.traceContext;
    let result: CreateResult;
    try {
      const claimed = this.#worker?.createClaimed(job);
      if (claimed) {
        const { result: created, started } = await claimed;
        if (started) {
          send.end();
          this.telemetry.submitted(name);
          this.#emitSubmitted(created.job);
          return created;
        }
        result = created;
      } else {
        result = await this.store.create(job);
      }
    } catch (error) {
      const failure = storeError(this.store.kind, error);
      send.end(failure);
      throw failure;
    }
    send.end();
    if (result.created) {
      this.telemetry.submitted(name);
      this.#emitSubmitted(result.job);
      // Not running here (it was just made): only watchers, if any, need to hear of it.
      if (this.#watchers > 0) this.#publish(result.job);
      this.#worker?.created(result.job);
    }
    return result;
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
    if (result.job && result.outcome === 'canceled') {
      const { job } = result;
      this.#emit('canceled', { jobId: job.id, name: job.name, attempt: job.attempt, at: Date.now(), runMs: null });
    }
    if (result.outcome === 'requested') this.#worker?.abort(id, new CanceledError());
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
    let watching = true;
    // Until the store reports every change, one made meanwhile may go unreported: read the job once it does, and
    // report its state as a change (a listener may hear a seq twice).
    this.#addWatcher()
      ?.then(() => (watching ? this.store.get(id) : undefined))
      .then((job) => {
        if (watching && job) listener({ id: job.id, status: job.status, seq: job.seq });
      })
      .catch(() => {});
    // With a change feed the poll is only a safety net (e.g. while the feed reconnects).
    const every = this.store.subscribe ? Math.max(5000, this.options.pollIntervalMs) : this.options.pollIntervalMs;
    const timer = setInterval(() => listener(null), every);
    timer.unref();
    return () => {
      clearInterval(timer);
      this.#changes.off(id, onChange);
      if (watching) this.#removeWatcher();
      watching = false;
    };
  }

  /**
   * Call `listener` on every change of any job made by this process or reported by the store's change feed (the
   * operator's live view). Returns the function that stops listening.
   */
  watchAll(listener: (change: JobChange) => void): () => void {
    this.#changes.on(ALL_JOBS, listener);
    void this.#addWatcher();
    let watching = true;
    return () => {
      this.#changes.off(ALL_JOBS, listener);
      if (watching) this.#removeWatcher();
      watching = false;
    };
  }

  /**
   * Count a watcher; the first asks the store to report every change (`setWatching`). Resolves (never rejects) once
   * it does, where that is not done yet; undefined where nothing is pending.
   */
  #addWatcher(): Promise<void> | undefined {
    this.#watchers += 1;
    const store = this.store;
    if (!store.setWatching || !store.subscribe) return undefined;
    if (this.#watchers === 1) {
      const pending: Promise<void> = this.ready()
        .then(() => store.setWatching!(true))
        // On failure the watchers' poll goes on, and the store's renewal registers again.
        .catch(() => {})
        .then(() => {
          if (this.#watching === pending) this.#watching = undefined;
        });
      this.#watching = pending;
    }
    return this.#watching;
  }

  #removeWatcher(): void {
    this.#watchers -= 1;
    if (this.#watchers === 0) this.store.setWatching?.(false).catch(() => {});
  }

  /**
   * Run a failed or canceled job again (see `JobStore.retry`): same id, a fresh attempt budget. Watchers hear it
   * move, and this process's worker looks for it at once.
   * @throws TypeError when the store has no `retry()`.
   */
  async retry(id: string): Promise<AdminOutcome<'retried'>> {
    const store = this.#adminStore('retry');
    await this.ready();
    const result = await this.#storeCall(() => store.retry!(id));
    if (result.outcome === 'retried' && result.job) {
      this.#publish(result.job);
      this.#worker?.queued();
    }
    return result;
  }

  /** Delete a job whatever its status (see `JobStore.remove`); watchers hear of it. False when missing. */
  async remove(id: string): Promise<boolean> {
    const store = this.#adminStore('remove');
    await this.ready();
    const job = await this.get(id);
    const removed = await this.#storeCall(() => store.remove!(id));
    // A change past its last one: whoever listens reads it again and finds it gone.
    if (removed && job) this.#publish({ id, status: job.status, seq: job.seq + 1 });
    return removed;
  }

  /** Deliver a finished job's webhook again (see `JobStore.redeliver`). */
  async redeliver(id: string): Promise<AdminOutcome<'redelivering'>> {
    const store = this.#adminStore('redeliver');
    await this.ready();
    const result = await this.#storeCall(() => store.redeliver!(id));
    // The record's seq did not move (nothing a status client sees changed); the operator's view hears it all the same.
    if (result.outcome === 'redelivering' && result.job) this.#publishAll(result.job);
    return result;
  }

  #adminStore(operation: 'retry' | 'remove' | 'redeliver'): JobStore {
    if (typeof this.store[operation] !== 'function') {
      throw new TypeError(`respond-async: the ${this.store.kind} store has no \`${operation}()\``);
    }
    return this.store;
  }

  /**
   * Call `listener` on each `event` of the jobs this process submits or runs (see `JobEvents`), for monitoring of
   * your own. Listeners run synchronously: keep them quick. One that throws is logged and does not disturb the
   * job or the other listeners. Returns the function that removes the listener.
   * @example
   * jobs.on('failed', (e) => metrics.increment('job_failed', { name: e.name, code: e.error.code }));
   */
  on<E extends keyof JobEvents>(event: E, listener: (payload: JobEvents[E]) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('respond-async: the listener must be a function');
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as (payload: never) => void);
    return () => this.off(event, listener);
  }

  /** Remove a listener added with `on()`. */
  off<E extends keyof JobEvents>(event: E, listener: (payload: JobEvents[E]) => void): void {
    this.#listeners.get(event)?.delete(listener as (payload: never) => void);
  }

  #emit<E extends keyof JobEvents>(event: E, payload: JobEvents[E]): void {
    const set = this.#listeners.get(event);
    if (!set || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        (listener as (payload: JobEvents[E]) => void)(payload);
      } catch (error) {
        this.logger.error(`respond-async: a "${event}" listener threw`, error);
      }
    }
  }

  #emitSubmitted(job: JobRecord): void {
    if (!this.#listeners.get('submitted')?.size) return;
    const traceId = this.telemetry.traceIdOf(job.traceContext);
    this.#emit('submitted', {
      jobId: job.id,
      name: job.name,
      attempt: 0,
      at: Date.now(),
      ...(traceId === undefined ? {} : { traceId }),
    });
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
    return this.#worker?.runningCount ?? 0;
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
    if (this.#worker?.started) task.start();
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    this.#closingController.abort();
    this.#worker?.stopClaiming();
    await Promise.allSettled(this.#background.map((task) => task.stop()));
    await this.#worker?.drain(timeoutMs);
    await this.#unsubscribe?.().catch(() => {});
    await this.store.close();
  }

  #startWorker(): void {
    const worker = this.#worker;
    if (!worker || worker.started || this.#closing) return;
    worker.start();
    for (const task of this.#background) task.start();
  }

  /**
   * Subscribe to the store's change feed, worker or not: changes made by other processes then reach watchers (SSE,
   * `Prefer: wait`, waitFor), cancels reach running handlers, and queued jobs wake the worker, at once. A failure is
   * logged; the watchers' and the worker's polls still see the changes, later.
   */
  async #listen(): Promise<void> {
    if (!this.store.subscribe || this.#closing || this.#unsubscribe) return;
    try {
      const unsubscribe = await this.store.subscribe((change) => this.#onRemoteChange(change));
      if (this.#closing) await unsubscribe();
      else this.#unsubscribe = unsubscribe;
    } catch (error) {
      this.logger.error("respond-async: subscribing to the store's changes failed; polling instead", error);
    }
  }

  #onRemoteChange(change: JobChange): void {
    this.#changes.emit(change.id, change);
    this.#changes.emit(ALL_JOBS, change);
    this.#worker?.onRemoteChange(change);
  }

  #publish(job: Pick<JobRecord, 'id' | 'status' | 'seq'>): void {
    this.#worker?.noteSeq(job);
    if (this.#watchers > 0 && this.#changes.listenerCount(job.id) > 0) {
      this.#changes.emit(job.id, { id: job.id, status: job.status, seq: job.seq });
    }
    this.#publishAll(job);
  }

  /** Tell `watchAll()` listeners, if any. */
  #publishAll(job: Pick<JobRecord, 'id' | 'status' | 'seq'>): void {
    if (this.#watchers > 0 && this.#changes.listenerCount(ALL_JOBS) > 0) {
      this.#changes.emit(ALL_JOBS, { id: job.id, status: job.status, seq: job.seq });
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

/** Create the job runtime. See `Jobs`. */
export function createJobs(options: JobsOptions = {}): Jobs {
  return new Jobs(options);
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
    // Set by `submit` before the store sees the job; here so that every NewJob has one shape (a store may copy it).
    traceContext: null,
  };
}

/** `logger` behind the runtime's one calling convention (message, details, fields). */
function fieldLogger(logger: Logger, format: 'auto' | 'fields' | 'message'): FieldLogger {
  const candidate = logger as Logger & { child?: unknown; bindings?: unknown };
  const fieldsFirst =
    format === 'fields' ||
    (format === 'auto' && typeof candidate.child === 'function' && typeof candidate.bindings === 'function');
  if (fieldsFirst) {
    const structured = (details: unknown, fields: LogFields | undefined) => ({ ...fields, ...detailFields(details) });
    const target = logger as unknown as Record<'error' | 'warn', (fields: object, message: string) => void>;
    return {
      error: (message, details, fields) => target.error(structured(details, fields), message),
      ...(logger.warn ? { warn: (message, details, fields) => target.warn(structured(details, fields), message) } : {}),
    };
  }
  // Message first, with the arguments as before (tests and users match on them); the trace id joins the message.
  const text = (message: string, fields: LogFields | undefined) =>
    fields?.traceId ? `${message} (trace ${fields.traceId})` : message;
  return {
    error: (message, ...rest) => {
      if (rest.length === 0) logger.error(message);
      else logger.error(text(message, rest[1]), rest[0]);
    },
    ...(logger.warn
      ? {
          warn: (message: string, ...rest: [unknown?, LogFields?]) => {
            if (rest.length === 0) logger.warn!(message);
            else logger.warn!(text(message, rest[1]), rest[0]);
          },
        }
      : {}),
  };
}

/** A log line's details as pino fields: an error as `err` (pino serialises its stack), an object's own fields. */
function detailFields(details: unknown): object {
  if (details === undefined) return {};
  if (details instanceof Error) return { err: details };
  if (typeof details === 'object' && details !== null && !Array.isArray(details)) return details;
  return { details };
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new TypeError(`respond-async: \`${name}\` must be a positive number, got ${String(value)}`);
  }
  return value;
}
