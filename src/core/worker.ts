// The worker of a Jobs runtime: the claim loop, running handlers, heartbeats, the writes that end an attempt, shutdown.
import { AttemptAbort } from './abort.js';
import { backoffDelay } from './backoff.js';
import { CanceledError, ShutdownError, TimeoutError } from './errors.js';
import type { DefineOptions, FieldLogger, JobDefinition, LogFields } from './jobs.js';
import type { OutageLog } from './outage-log.js';
import { attemptOutcome, type HandlerResult, LeaseLostError, type Outcome } from './outcome.js';
import type { CreateResult, JobStore } from './store.js';
import type { AttemptOutcomeLabel, ProcessSpan, Telemetry } from './telemetry.js';
import type { JobChange, JobContext, JobErrorInfo, JobEvent, JobEvents, JobRecord, NewJob } from './types.js';

/** What the worker needs from its runtime. @internal */
export interface WorkerHost {
  readonly store: JobStore;
  readonly workerId: string;
  readonly options: {
    readonly concurrency: number;
    readonly leaseMs: number;
    readonly pollIntervalMs: number;
    readonly retentionMs: number;
    readonly maxResultBytes: number;
    readonly historyStacks: boolean;
  };
  readonly logger: FieldLogger;
  readonly outages: OutageLog;
  readonly telemetry: Telemetry;
  readonly definitions: ReadonlyMap<string, JobDefinition<never, unknown>>;
  /** Resolves once the store is ready. */
  ready(): Promise<void>;
  /** Whether the store's change feed is subscribed (it then announces every queued job). */
  subscribed(): boolean;
  /** Tell watchers of a change this worker wrote. */
  publish(job: Pick<JobRecord, 'id' | 'status' | 'seq'>): void;
  /** Tell `Jobs.on()` listeners of a lifecycle event (never throws). */
  emit<E extends keyof JobEvents>(event: E, payload: JobEvents[E]): void;
}

interface Running {
  job: JobRecord;
  abort: AttemptAbort;
  /** Its handler still runs (holds one of `concurrency` slots); false once only the final write is left. */
  active: boolean;
  /** The attempt's `process` span. */
  span: ProcessSpan;
  /** When the attempt started (epoch ms). */
  startedAt: number;
}

/** How an attempt ended, for its span, metrics and events. */
interface Ended {
  outcome: AttemptOutcomeLabel;
  error?: unknown;
  /** The lifecycle event the attempt ends with, if any; `retryAt` with `retrying`. */
  event?: { kind: 'completed' | 'retrying' | 'failed' | 'canceled'; error?: JobErrorInfo; retryAt?: number };
}

/**
 * Runs the jobs of one process: claims due jobs while slots are free, runs their handlers, renews their leases,
 * writes how each attempt ended, and drains on close.
 * @internal Created by `Jobs` when `worker` is not false.
 */
export class Worker {
  readonly #host: WorkerHost;
  readonly #running = new Map<string, Running>();
  // The claim loop's state. A claim asks the store for as many jobs as there are free slots, so the loop tracks
  // which slots are taken and whether a claim could find anything:
  // - `#active` counts handlers running (what `concurrency` limits); `#running` also holds jobs whose handler has
  //   returned but whose final write is still in flight.
  // - `#reserved` counts slots promised to work not yet in `#running`: a claim in flight, or a submit creating its
  //   job already claimed by this worker. Without it two claims, or a claim and a submit, could fill one slot twice.
  // - `#queueMayHoldJobs` is false once a claim came back short and nothing has been queued since, as far as this
  //   process knows. Then a new submit may take its job at once (createClaimed) without jumping the queue, and,
  //   where the store's change feed announces every queued job, the loop need not ask the store at all.
  // - `#pumping` keeps one claim loop at a time; a wake-up during it sets `#pumpAgain` so the loop looks once more
  //   rather than missing the news.
  // - `#offered` counts the slots this worker last offered in the store (offerSlots), less the jobs handed to it
  //   since: where the store hands new jobs to idle workers, an idle worker offers its free slots once the queue is
  //   empty, and a create then inserts its job leased to it and the change feed names it, so it starts the job
  //   without a claim. The offer is a hint: a job handed over beyond the free slots (offers raced with claims) goes
  //   back to the queue.
  #active = 0;
  #reserved = 0;
  // Claimed ahead (stores with `remoteClaims`): while handlers are short, a claim may take up to `concurrency` jobs
  // more than the free slots, and a second claim may go while one is in flight, so that a claim's round trip
  // overlaps the handlers instead of following them. Those jobs wait here, leased to this worker, oldest first,
  // until a slot frees; the heartbeat renews their leases, and hands back any that waited a whole heartbeat.
  #ahead: Array<{ job: JobRecord; claimedAt: number }> = [];
  #claimsInFlight = 0;
  /** The last claim came back full: the queue holds more than the slots take. */
  #backlog = false;
  /** How long handlers run, smoothed (ms; undefined until one returned): the worker claims ahead while it is short. */
  #runMs: number | undefined;
  #queueMayHoldJobs = true;
  #pumping = false;
  #pumpAgain = false;
  #pumpDone: Promise<void> = Promise.resolve();
  #wakeScheduled = false;
  #offered = 0;
  /** The offer (or withdrawal) in flight; one at a time, so that a late offer cannot outlive the withdrawal. */
  #offering: Promise<void> | undefined;
  /** Handed-over jobs being read from the store, so that one notification starts a job once. */
  readonly #handing = new Set<string>();
  /**
   * Hand-offs already taken up, with when: a hand-off is announced twice to the process that created the job (its
   * create's result and the notification, in either order, maybe after the job ended), and must start once.
   * Forgotten after a lease (the heartbeat prunes them).
   */
  readonly #handoffsSeen = new Map<string, number>();
  /** Submits whose job is being created claimed by this worker: drain() waits for them to start. */
  readonly #landing = new Set<Promise<void>>();
  readonly #idle = new Set<() => void>();
  #started = false;
  #stopping = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #purgeTimer: NodeJS.Timeout | undefined;

  constructor(host: WorkerHost) {
    this.#host = host;
  }

  /** Whether start() has run. */
  get started(): boolean {
    return this.#started;
  }

  /** Jobs running in this process now. */
  get runningCount(): number {
    return this.#running.size;
  }

  /** Start the poll, heartbeat and purge timers and look for work. Idempotent. */
  start(): void {
    if (this.#started || this.#stopping) return;
    this.#started = true;
    const { pollIntervalMs, retentionMs } = this.#host.options;
    this.#pollTimer = setInterval(() => {
      // Jobs no notification announces (delayed retries coming due, lapsed leases) are found here.
      this.#queueMayHoldJobs = true;
      this.wake();
    }, pollIntervalMs);
    this.#pollTimer.unref();
    // #heartbeat and #purge catch every failure themselves: a timer never leaves a rejected promise behind.
    this.#heartbeatTimer = setInterval(() => void this.#heartbeat(), heartbeatMs(this.#host.options));
    this.#heartbeatTimer.unref();
    this.#purgeTimer = setInterval(() => void this.#purge(), Math.min(60_000, retentionMs));
    this.#purgeTimer.unref();
    queueMicrotask(() => this.wake());
  }

  /** Hold the process open until close(): the poll timer is ref'd (stopClaiming() clears it). */
  keepAlive(): void {
    this.#pollTimer?.ref();
  }

  /** A job was queued (by this process or, per the change feed, another): look for work. */
  queued(): void {
    this.#queueMayHoldJobs = true;
    this.wake();
  }

  /**
   * Create `job` already claimed by this worker, and start it, when the store can, this worker has a slot free and
   * knows of no due job waiting in the store (so the new job jumps no queue); undefined otherwise (the caller then
   * creates it queued). `started` tells whether it runs here. Until the job is stored and started, drain() waits
   * for it, so that it is drained like the other running jobs.
   */
  createClaimed(job: NewJob): Promise<{ result: CreateResult; started: boolean }> | undefined {
    const { store, workerId, options } = this.#host;
    const createClaimed = store.createClaimed;
    if (!createClaimed || this.#stopping || this.#queueMayHoldJobs || this.#ahead.length > 0) return undefined;
    const { concurrency } = options;
    if (this.#active + this.#reserved >= concurrency || this.#running.size + this.#reserved >= 2 * concurrency) {
      return undefined;
    }
    this.#reserved += 1;
    // The store takes the slot from this worker's offer, if any.
    this.#offered = Math.max(0, this.#offered - 1);
    const landing = (async () => {
      let result: CreateResult;
      try {
        result = await createClaimed.call(store, job, { workerId, leaseMs: options.leaseMs });
      } finally {
        this.#reserved -= 1;
      }
      return { result, started: result.created && this.startIfOurs(result.job) };
    })();
    const landed: Promise<void> = landing.then(
      () => {
        this.#landing.delete(landed);
      },
      () => {
        this.#landing.delete(landed);
      },
    );
    this.#landing.add(landed);
    return landing;
  }

  /** A create of this process stored `job`: queued, or handed to a worker (maybe this one: it starts it now). */
  created(job: JobRecord): void {
    if (job.status === 'queued') this.queued();
    else if (job.status === 'processing' && job.leaseOwner === this.#host.workerId) this.#handedOver(job.id, job);
  }

  /**
   * A job was created leased to this worker (it took one of the slots this worker offered): start it, read from
   * the store unless the notification carried it. Over capacity (an offer raced with a claim) or closing, hand it back to the queue.
   */
  #handedOver(id: string, job?: JobRecord): void {
    if (this.#handoffsSeen.has(id)) return;
    this.#handoffsSeen.set(id, Date.now());
    if (this.#running.has(id) || this.#handing.has(id)) return;
    this.#offered = Math.max(0, this.#offered - 1);
    const { store, workerId, options, outages } = this.#host;
    const { concurrency } = options;
    if (
      this.#stopping ||
      this.#active + this.#reserved + this.#ahead.length >= concurrency ||
      this.#running.size + this.#reserved >= 2 * concurrency
    ) {
      this.#handBack(id);
      return;
    }
    this.#reserved += 1;
    this.#handing.add(id);
    const landed: Promise<void> = (job ? Promise.resolve(job) : store.get(id))
      .then(
        (record) => {
          this.#reserved -= 1;
          this.#handing.delete(id);
          if (!job) outages.recovered('get');
          // Still ours and not yet running (a claim after a lapsed lease may have taken it meanwhile).
          if (record?.status !== 'processing' || record.leaseOwner !== workerId || this.#running.has(id)) return;
          if (this.#stopping) this.#handBack(id);
          else this.#start(record);
        },
        (error: unknown) => {
          this.#reserved -= 1;
          this.#handing.delete(id);
          // The lease lapses and a claim takes the job.
          outages.failed('get', 'respond-async: reading a job handed to this worker failed', error);
        },
      )
      .finally(() => {
        this.#landing.delete(landed);
      });
    this.#landing.add(landed);
  }

  /**
   * Jobs claimed ahead that have waited a whole heartbeat interval (the slots stayed busy: handlers turned long) go
   * back to the queue, for another worker or this one later.
   */
  #handBackStale(): void {
    const interval = heartbeatMs(this.#host.options);
    const before = Date.now() - interval;
    const stale = this.#ahead.filter(({ claimedAt }) => claimedAt <= before);
    if (stale.length === 0) return;
    this.#ahead = this.#ahead.filter(({ claimedAt }) => claimedAt > before);
    for (const { job } of stale) this.#handBack(job.id);
    // The handlers run long now: claim no more ahead until short ones bring the smoothed time back down.
    this.#runMs = Math.max(this.#runMs ?? 0, interval);
  }

  /** Hand a job leased to this worker back to the queue (not counted as an attempt); on failure its lease lapses. */
  #handBack(id: string): void {
    const { store, workerId, outages } = this.#host;
    store.release(id, workerId).then(
      () => outages.recovered('release'),
      (error: unknown) => outages.failed('release', 'respond-async: handing a job back failed', error),
    );
  }

  /**
   * Offer this worker's free slots in the store, when it can hand jobs over, the queue is empty as far as this
   * worker knows, and fewer than half its free slots are still offered (so that one job at a time does not cost an
   * offer each).
   */
  #offerSlots(): void {
    if (!this.#host.store.offerSlots || this.#stopping || this.#offering || this.#queueMayHoldJobs) return;
    if (!this.#host.subscribed()) return;
    const { concurrency } = this.#host.options;
    const free =
      Math.min(concurrency - this.#active, 2 * concurrency - this.#running.size) - this.#reserved - this.#ahead.length;
    if (free <= 0 || 2 * this.#offered > free) return;
    this.#offered = free;
    this.#sendOffer(free);
  }

  /** Offer no slots (the worker got busy otherwise); a job handed over meanwhile beyond the free slots goes back. */
  #retractOffer(): void {
    if (this.#stopping || this.#offered === 0) return;
    this.#offered = 0;
    this.#sendOffer(0);
  }

  /** Keep the offer alive (the heartbeat), and learn how many of its slots are left. */
  #renewOffer(): void {
    if (this.#stopping || this.#offering || this.#offered === 0) return;
    this.#sendOffer(null);
  }

  /**
   * Write the offer (`free` slots; null keeps the count and extends it), after any write of it still in flight, so
   * that they land in order. Where the store keeps no offers, nothing.
   */
  #sendOffer(free: number | null): void {
    const { store, workerId, options, outages } = this.#host;
    const offerSlots = store.offerSlots?.bind(store);
    if (!offerSlots) return;
    const names = [...this.#host.definitions.keys()];
    const offer = { workerId, names, free, leaseMs: options.leaseMs, ttlMs: offerTtl(options) };
    const sent: Promise<void> = (this.#offering ?? Promise.resolve())
      .then(() => offerSlots(offer))
      .then(
        (left) => {
          outages.recovered('offer');
          // A renewal tells how many slots creates have not taken yet.
          if (free === null && this.#offered > 0) this.#offered = left;
        },
        (error: unknown) => {
          if (free !== null && free > 0) this.#offered = 0;
          outages.failed('offer', "respond-async: offering this worker's free slots failed", error);
        },
      )
      .then(() => {
        if (this.#offering === sent) this.#offering = undefined;
      });
    this.#offering = sent;
  }

  /** Withdraw the offer (closing): after this no create hands a job to this worker. */
  async #withdrawOffer(): Promise<void> {
    const { store, workerId, outages } = this.#host;
    await this.#offering;
    this.#offered = 0;
    if (!store.withdrawSlots || !store.offerSlots) return;
    try {
      await store.withdrawSlots(workerId);
    } catch (error) {
      // The offer lapses by itself; jobs handed over meanwhile are handed back, or recovered at lease expiry.
      outages.failed('offer', "respond-async: withdrawing this worker's offer failed", error);
    }
  }

  /** After a create: start the job when it was created claimed by this worker. Whether it was. */
  startIfOurs(job: JobRecord): boolean {
    if (job.status !== 'processing' || job.leaseOwner !== this.#host.workerId) return false;
    this.#start(job);
    return true;
  }

  /** Abort the handler of job `id` if it runs here; a cancel of a job claimed ahead ends it when it starts. */
  abort(id: string, reason: Error): void {
    this.#running.get(id)?.abort.abort(reason);
    if (reason instanceof CanceledError) {
      for (const { job } of this.#ahead) if (job.id === id) job.cancelRequested = true;
    }
  }

  /** A write of this process returned job `job`: keep the running copy's `seq`, so remote changes are told apart. */
  noteSeq(job: Pick<JobRecord, 'id' | 'seq'>): void {
    const running = this.#running.get(job.id);
    if (running && job.seq > running.job.seq) running.job.seq = job.seq;
  }

  /** A change reported by the store's change feed. */
  onRemoteChange(change: JobChange): void {
    if (change.status === 'queued') this.queued();
    if (change.leaseOwner === this.#host.workerId && change.status === 'processing') {
      this.#handedOver(change.id, change.job);
    }
    const running = this.#running.get(change.id);
    // A change this process did not make to a job it runs: maybe a cancel asked for on another instance.
    if (running && change.status === 'processing' && change.seq > running.job.seq) {
      const { store, outages } = this.#host;
      // On failure the next heartbeat's renew reports the cancel request instead.
      store.get(change.id).then(
        (job) => {
          outages.recovered('get');
          if (job?.cancelRequested) running.abort.abort(new CanceledError());
        },
        (error: unknown) => outages.failed('get', 'respond-async: reading a changed job failed', error),
      );
    }
  }

  /** Stop claiming: the first step of close(). */
  stopClaiming(): void {
    this.#stopping = true;
    clearInterval(this.#pollTimer);
    clearInterval(this.#purgeTimer);
    this.#startAhead();
  }

  /**
   * Let running jobs finish up to `timeoutMs`, then abort their signals (ShutdownError: their leases go back).
   * A claim in flight, or a submit creating a job claimed by this worker, may still hand us jobs: they land first
   * so they are drained like the others.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.stopClaiming();
    await this.#pumpDone;
    await this.#withdrawOffer();
    await Promise.all([...this.#landing]);
    if (this.#running.size > 0) {
      const drained = new Promise<void>((resolve) => this.#idle.add(resolve));
      const deadline = new Promise<'deadline'>((resolve) => setTimeout(resolve, timeoutMs, 'deadline').unref());
      if ((await Promise.race([drained, deadline])) === 'deadline') {
        for (const running of this.#running.values()) running.abort.abort(new ShutdownError());
        await drained;
      }
    }
    clearInterval(this.#heartbeatTimer);
  }

  /** Claim and start jobs while there are free slots. Never runs twice at once. */
  wake(): void {
    if (this.#stopping || !this.#started || this.#host.definitions.size === 0) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    this.#pumpDone = this.#pump().finally(() => {
      this.#pumping = false;
      if (this.#pumpAgain) {
        this.#pumpAgain = false;
        this.wake();
      }
    });
  }

  async #pump(): Promise<void> {
    await this.#claimLoop();
    this.#offerSlots();
  }

  async #claimLoop(): Promise<void> {
    const { store, outages } = this.#host;
    // Starting a job (its span, its events) runs here too: whatever throws is logged, never left unhandled.
    try {
      await this.#host.ready();
      const names = [...this.#host.definitions.keys()];
      // Where jobs can be created claimed, the store announces every queued job: a claim is needed only when one
      // may be waiting. Elsewhere the worker looks each time a slot frees.
      const gated = store.createClaimed !== undefined && this.#host.subscribed();
      for (;;) {
        this.#startAhead();
        const limit = this.#claimLimit();
        // With a backlog, a second claim may go while the first (which cleared #queueMayHoldJobs) is in flight.
        if (limit <= 0 || (gated && !this.#queueMayHoldJobs && !this.#backlog)) return;
        this.#queueMayHoldJobs = false;
        this.#claim(names, limit);
      }
    } catch (error) {
      this.#queueMayHoldJobs = true;
      outages.failed('claim', 'respond-async: claiming jobs failed; will retry', error);
    }
  }

  /**
   * How many jobs the next claim may take (at most `concurrency`): the free slots, plus up to `concurrency` claimed
   * ahead (see `#ahead`) while handlers are short and the queue holds more; 0 while closing or with a claim in
   * flight (two, claiming ahead). A slot frees when its handler returns; the final writes still in flight are
   * bounded too, so that a slow store cannot make them pile up: the jobs this worker holds in any state, at most
   * twice `concurrency`, five times claiming ahead (where a batch's completions wait for the next claim while
   * another batch's ride on the claim in flight).
   */
  #claimLimit(): number {
    const { concurrency } = this.#host.options;
    const ahead = this.#claimsAhead();
    if (this.#stopping || this.#claimsInFlight >= (ahead ? 2 : 1)) return 0;
    // Claimed (or being claimed) and not started yet.
    const waiting = this.#reserved + this.#ahead.length;
    const slots = (ahead ? 2 : 1) * concurrency - this.#active - waiting;
    // #running holds the running handlers and the jobs whose final write is in flight.
    const writes = (ahead ? 5 : 2) * concurrency - this.#running.size - waiting;
    return Math.min(concurrency, slots, writes);
  }

  /** Whether to claim ahead of the free slots: a store whose claims cross the network, short handlers, a backlog. */
  #claimsAhead(): boolean {
    return (
      this.#host.store.remoteClaims === true &&
      this.#backlog &&
      this.#runMs !== undefined &&
      this.#runMs < CLAIM_AHEAD_MAX_RUN_MS
    );
  }

  /** Claim up to `limit` jobs; they start as slots free (`#startAhead`), and the loop looks again. */
  #claim(names: string[], limit: number): void {
    const { store, workerId, options, outages } = this.#host;
    this.#reserved += limit;
    this.#claimsInFlight += 1;
    // The slots it held are counted again in the same turn as its jobs, so that no other claim takes them between.
    const landed = (): void => {
      this.#reserved -= limit;
      this.#claimsInFlight -= 1;
    };
    const claiming: Promise<void> = store
      .claim({ names, workerId, limit, leaseMs: options.leaseMs })
      .then(
        (claimed) => {
          landed();
          outages.recovered('claim');
          // Busy with queued jobs: the slots on offer are no longer free.
          if (claimed.length > 0) this.#retractOffer();
          this.#backlog = claimed.length === limit;
          if (this.#backlog) this.#queueMayHoldJobs = true;
          const claimedAt = Date.now();
          for (const job of claimed) this.#ahead.push({ job, claimedAt });
          this.#startAhead();
          // Look again when the queue may hold more (a full claim, or news of a job queued meanwhile); otherwise
          // the slots still free are offered, where the store hands new jobs to idle workers.
          if (this.#queueMayHoldJobs) this.wake();
          else if (!this.#pumping) this.#offerSlots();
        },
        (error: unknown) => {
          landed();
          // The poll timer (or the next slot to free) tries again.
          this.#backlog = false;
          this.#queueMayHoldJobs = true;
          outages.failed('claim', 'respond-async: claiming jobs failed; will retry', error);
        },
      )
      .catch((error: unknown) => outages.failed('claim', 'respond-async: starting claimed jobs failed', error))
      .finally(() => this.#landing.delete(claiming));
    this.#landing.add(claiming);
  }

  /** Start the jobs claimed ahead while slots are free; closing, hand them back instead. */
  #startAhead(): void {
    if (this.#stopping) {
      for (const { job } of this.#ahead) this.#handBack(job.id);
      this.#ahead = [];
      return;
    }
    const { concurrency } = this.#host.options;
    while (this.#active < concurrency) {
      const next = this.#ahead.shift();
      if (!next) return;
      this.#start(next.job);
    }
  }

  /** Drop expired jobs; a failure is retried on the next tick. */
  async #purge(): Promise<void> {
    try {
      await this.#host.store.purgeExpired();
      this.#host.outages.recovered('purge');
    } catch (error) {
      this.#host.outages.failed('purge', 'respond-async: purging expired jobs failed; will retry', error);
    }
  }

  #start(job: JobRecord): void {
    // The job may still be in #running here: its previous attempt ended (the retry was claimed before that run
    // was cleaned up), or its lease lapsed unrenewed and this process claimed it back. Either way that run is
    // over: abort it as a lost lease, and let only the new run own the entry.
    this.#running.get(job.id)?.abort.abort(new LeaseLostError());
    const abort = new AttemptAbort();
    const { telemetry } = this.#host;
    const startedAt = Date.now();
    const entry: Running = { job, abort, active: true, span: telemetry.process(job), startedAt };
    this.#running.set(job.id, entry);
    this.#active += 1;
    telemetry.started(job.name, startedAt - job.runAt);
    this.#host.publish(job);
    this.#host.emit('started', { ...this.#eventOf(entry, startedAt), waitMs: Math.max(0, startedAt - job.runAt) });
    let ended: Ended = { outcome: 'failed' };
    this.#run(entry)
      .then(
        (outcome) => {
          ended = outcome;
        },
        (error: unknown) => {
          ended = { outcome: 'failed', error };
          this.#host.logger.error(`respond-async: running job ${job.id} failed`, error, logFields(entry));
        },
      )
      .finally(() => {
        const now = Date.now();
        entry.span.end(ended.outcome, ended.error);
        telemetry.finished(job.name, ended.outcome, now - startedAt);
        this.#emitEnded(entry, ended, now);
        this.#handlerDone(entry);
        if (this.#running.get(job.id) === entry) this.#running.delete(job.id);
        if (this.#running.size === 0) for (const resolve of this.#idle) resolve();
        this.wake();
      });
  }

  /** What every event about the attempt of `entry` carries. */
  #eventOf(entry: Running, at: number): JobEvent {
    const { job, span } = entry;
    return {
      jobId: job.id,
      name: job.name,
      attempt: job.attempt,
      at,
      ...(span.traceId === undefined ? {} : { traceId: span.traceId }),
    };
  }

  #emitEnded(entry: Running, ended: Ended, now = Date.now()): void {
    const event = ended.event;
    if (!event) return;
    const base = { ...this.#eventOf(entry, now), runMs: now - entry.startedAt };
    const error = event.error ?? { message: 'The job failed' };
    switch (event.kind) {
      case 'completed':
        this.#host.emit('completed', base);
        return;
      case 'canceled':
        this.#host.emit('canceled', base);
        return;
      case 'failed':
        this.#host.emit('failed', { ...base, error });
        return;
      case 'retrying':
        this.#host.emit('retrying', { ...base, error, retryAt: event.retryAt ?? now });
    }
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
    const ms = Date.now() - entry.startedAt;
    this.#runMs = this.#runMs === undefined ? ms : this.#runMs + (ms - this.#runMs) / 8;
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      this.wake();
    });
  }

  async #run(entry: Running): Promise<Ended> {
    const { job, abort } = entry;
    const { store, workerId, options } = this.#host;
    const definition = this.#host.definitions.get(job.name);
    if (!definition) return { outcome: 'lost' }; // claim filters by name; unreachable
    const { attempts } = definition.options;
    const retentionMs = options.retentionMs;
    if (job.attempt > attempts) {
      // Leases lapsed (crashed processes) until the attempts ran out.
      const error = { message: 'The job failed', code: 'ERR_RESPOND_ASYNC_ATTEMPTS_EXHAUSTED' };
      this.#handlerDone(entry);
      await this.#settle(() => store.fail(job.id, workerId, { error, retryAt: null, retentionMs }), abort);
      return {
        outcome: 'failed',
        error: Object.assign(new Error(error.message), { code: error.code }),
        event: { kind: 'failed', error },
      };
    }
    if (job.cancelRequested) {
      this.#handlerDone(entry);
      await this.#settle(() => store.markCanceled(job.id, workerId, { retentionMs }), abort);
      return { outcome: 'canceled', event: { kind: 'canceled' } };
    }
    const result = await this.#invoke(entry, definition);
    this.#handlerDone(entry);
    const abortReason: unknown = abort.aborted ? abort.reason : undefined;
    const outcome = attemptOutcome({
      result,
      abortReason,
      attempt: job.attempt,
      attempts,
      maxResultBytes: options.maxResultBytes,
    });
    await this.#record(entry, outcome, definition.options.backoff);
    return ended(outcome, abortReason instanceof TimeoutError);
  }

  /** Run the handler of `entry` with its context, under its timeout; settles as soon as its signal aborts. */
  async #invoke(entry: Running, definition: JobDefinition<never, unknown>): Promise<HandlerResult> {
    const { job, abort } = entry;
    const { store, workerId } = this.#host;
    const { timeoutMs } = definition.options;
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => abort.abort(new TimeoutError(timeoutMs)), timeoutMs);
    }
    // One progress write in flight per job, the latest value next: a handler that reports without awaiting
    // cannot flood the store (or exhaust a connection pool).
    const writeProgress = latestWins<{ value: number; text: string | null }>(
      ({ value, text }) => this.#write('progress', () => store.progress(job.id, workerId, value, text)),
      () => !entry.active || abort.aborted,
    );
    const ctx: JobContext = {
      jobId: job.id,
      attempt: job.attempt,
      owner: job.owner,
      get signal() {
        return abort.signal;
      },
      progress: (percent, message) => {
        if (abort.aborted) return Promise.resolve();
        const clamped = Math.min(100, Math.max(0, Number.isFinite(percent) ? percent : 0));
        const value = Math.round(clamped * 100) / 100;
        const text = message === undefined ? null : String(message).slice(0, 1000);
        this.#host.emit('progress', { ...this.#eventOf(entry, Date.now()), percent: value, message: text });
        return writeProgress({ value, text });
      },
    };
    // A retry starts from nothing: the progress the failed attempt left is reset, unless the handler reports first.
    if (job.attempt > 1 && job.progress !== null && job.progress !== 0) void writeProgress({ value: 0, text: null });
    try {
      // Under the attempt's span: spans the handler starts are its children.
      const work = entry.span.run(() => definition.handler(job.input as never, ctx));
      return { ok: true, value: await abort.race(work) };
    } catch (error) {
      return { ok: false, error };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Write how the attempt of `entry` ended. */
  async #record(entry: Running, outcome: Outcome, backoff: DefineOptions['backoff']): Promise<void> {
    const { job, abort } = entry;
    const { store, workerId, options, logger } = this.#host;
    const { retentionMs } = options;
    switch (outcome.kind) {
      case 'release':
        await store.release(job.id, workerId).catch(() => {});
        return;
      case 'lost':
        return;
      case 'cancel':
        await this.#settle(() => store.markCanceled(job.id, workerId, { retentionMs }), abort);
        return;
      case 'complete': {
        const { result, resultUrl } = outcome;
        await this.#settle(() => store.complete(job.id, workerId, { result, resultUrl, retentionMs }), abort);
        return;
      }
      default: {
        if (outcome.unexpected) {
          logger.error(
            `respond-async: job ${job.name} ${job.id} attempt ${job.attempt} failed`,
            outcome.cause,
            logFields(entry),
          );
        }
        const retryAt = outcome.kind === 'retry' ? Date.now() + backoffDelay(backoff, job.attempt) : null;
        const { error } = outcome;
        // Told before the write: once it is stored, the next attempt may start (and be told) at once.
        if (retryAt !== null)
          this.#emitEnded(entry, { outcome: 'retrying', event: { kind: 'retrying', error, retryAt } });
        // The attempt for the job's history, seen by operators only: the full server-side error, not the public one.
        const attempt = {
          attempt: job.attempt,
          startedAt: entry.startedAt,
          finishedAt: Date.now(),
          error: serverError(outcome.cause, options.historyStacks),
          retried: retryAt !== null,
        };
        await this.#settle(() => store.fail(job.id, workerId, { error, retryAt, retentionMs, attempt }), abort);
      }
    }
  }

  /**
   * The write that ends an attempt (complete, fail, cancel). While the store cannot be reached (a database restart)
   * it is retried, backing off up to 2 s, for as long as the lease can still be ours: the job stays in `#running`,
   * so the heartbeat keeps renewing its lease once the store is back, and a job that finished during an outage is
   * recorded instead of being run again. Stops at shutdown or when the heartbeat finds the lease lost; the lease
   * then lapses and the job runs again elsewhere (at least once).
   */
  async #settle(write: () => Promise<JobRecord | undefined>, abort: AttemptAbort): Promise<void> {
    const deadline = Date.now() + this.#host.options.leaseMs;
    for (let delay = 100; ; delay = Math.min(2 * delay, 2000)) {
      try {
        const job = await write();
        this.#host.outages.recovered('settle');
        if (job) this.#host.publish(job);
        return;
      } catch (error) {
        const reason: unknown = abort.reason;
        const givenUp = abort.aborted && (reason instanceof ShutdownError || reason instanceof LeaseLostError);
        if (givenUp || Date.now() + delay >= deadline) {
          this.#host.outages.failed(
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
      this.#host.outages.recovered(kind);
      if (!job) return;
      this.#host.publish(job);
      // A cancel asked for elsewhere shows on the record the write returns.
      if (job.cancelRequested && job.status === 'processing') {
        this.#running.get(job.id)?.abort.abort(new CanceledError());
      }
    } catch (error) {
      this.#host.outages.failed(kind, `respond-async: store write (${kind}) failed; the next one tries again`, error);
    }
  }

  async #heartbeat(): Promise<void> {
    this.#renewOffer();
    const forgetBefore = Date.now() - this.#host.options.leaseMs;
    for (const [id, at] of this.#handoffsSeen) if (at < forgetBefore) this.#handoffsSeen.delete(id);
    this.#handBackStale();
    if (this.#running.size === 0 && this.#ahead.length === 0) return;
    const ids = [...this.#running.keys(), ...this.#ahead.map(({ job }) => job.id)];
    try {
      const states = await this.#host.store.renew(ids, this.#host.workerId, this.#host.options.leaseMs);
      this.#host.outages.recovered('renew');
      const lost = new Set<string>();
      for (const state of states) {
        const running = this.#running.get(state.id);
        if (!state.held) lost.add(state.id);
        if (!running) continue;
        if (!state.held) running.abort.abort(new LeaseLostError());
        else if (state.cancelRequested) running.abort.abort(new CanceledError());
      }
      // A job claimed ahead whose lease is gone (another worker took it after a lapse) is not started here.
      if (lost.size > 0) this.#ahead = this.#ahead.filter(({ job }) => !lost.has(job.id));
    } catch (error) {
      this.#host.outages.failed('renew', 'respond-async: renewing leases failed', error);
    }
  }
}

/** How often the worker renews its leases (and offer): three times a lease. */
function heartbeatMs(options: { leaseMs: number }): number {
  return Math.max(10, options.leaseMs / 3);
}

/**
 * Handlers that run longer than this (smoothed) are not claimed ahead of: a claim's round trip is small beside them,
 * and a job claimed ahead would wait that long on this worker while another might run it.
 */
const CLAIM_AHEAD_MAX_RUN_MS = 20;

/**
 * How long an offer of free slots holds unless the heartbeat (every third of a lease) renews it: a worker that dies
 * is handed jobs for at most this long, and those jobs wait for their lease to lapse, like the ones it held.
 */
function offerTtl(options: { leaseMs: number }): number {
  return options.leaseMs;
}

/** The longest error message (and stack) kept in a job's attempt history. */
const MAX_ERROR_MESSAGE = 4000;

/** The error as the server sees it (message and code; the stack only when the app asks), for the attempt history. */
function serverError(error: unknown, withStack: boolean): JobErrorInfo & { stack?: string } {
  const candidate = error as { message?: unknown; code?: unknown; stack?: unknown } | null;
  let message = 'The job failed';
  try {
    message = typeof candidate?.message === 'string' ? candidate.message : String(error);
  } catch {
    // A thrown value that cannot be turned into text keeps the generic message.
  }
  const info: JobErrorInfo & { stack?: string } = { message: message.slice(0, MAX_ERROR_MESSAGE) };
  if (typeof candidate?.code === 'string') info.code = candidate.code;
  if (withStack && typeof candidate?.stack === 'string') info.stack = candidate.stack.slice(0, MAX_ERROR_MESSAGE);
  return info;
}

/** The structured fields of a log line about the attempt of `entry`. */
function logFields(entry: Running): LogFields {
  const { job, span } = entry;
  return {
    jobId: job.id,
    jobName: job.name,
    attempt: job.attempt,
    ...(span.traceId === undefined ? {} : { traceId: span.traceId }),
  };
}

/** The outcome label of an attempt's span and metrics. A shutdown hands the job back to run again: `retrying`. */
function ended(outcome: Outcome, timedOut: boolean): Ended {
  switch (outcome.kind) {
    case 'complete':
      return { outcome: 'complete', event: { kind: 'completed' } };
    case 'cancel':
      return { outcome: 'canceled', event: { kind: 'canceled' } };
    case 'lost':
      return { outcome: 'lost' };
    case 'release':
      return { outcome: 'retrying' };
    default: {
      // A retry's event was told before its write (see #record).
      const retrying = outcome.kind === 'retry';
      return {
        outcome: timedOut ? 'timeout' : retrying ? 'retrying' : 'failed',
        error: outcome.cause,
        ...(retrying ? {} : { event: { kind: 'failed', error: outcome.error } }),
      };
    }
  }
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
