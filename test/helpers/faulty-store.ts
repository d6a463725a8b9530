// A JobStore wrapper for fault injection: while on, a chosen fraction of calls of every kind rejects at once, hangs
// and then rejects, hangs and then goes through (a slow store), or goes through and then rejects (the reply was lost
// after the write committed). The first call of each method while faults are on always gets one, so that a method
// the runtime calls rarely (fail, renew) is still tested. Counts the faults it injected, by method and by kind of fault.
import type { ClaimOptions, CreateResult, JobStore, SlotOffer } from '../../src/core/store.js';
import type { JobChange, NewJob } from '../../src/core/types.js';

export type FaultKind = 'reject' | 'hang-reject' | 'hang-pass' | 'lost-reply';

export interface FaultyStoreOptions {
  /** Fraction of calls (0..1) that get a fault while faults are on. Default 0.2. */
  rate?: number;
  /** Longest hang, in ms (each hang lasts a random time up to this). Default 500. */
  maxHangMs?: number;
  /** Random numbers in [0, 1); default Math.random. */
  random?: () => number;
}

/** The error an injected fault rejects with, so that the tests can tell it from a real one. */
export class InjectedFault extends Error {
  readonly code = 'ERR_TEST_INJECTED_FAULT';
  constructor(method: string, kind: FaultKind) {
    super(`injected fault (${kind}) in ${method}()`);
    this.name = 'InjectedFault';
  }
}

const KINDS: readonly FaultKind[] = ['reject', 'hang-reject', 'hang-pass', 'lost-reply'];

/** Methods that never get a fault: setting up and tearing down are not what the suite tests. */
const SPARED = new Set(['init', 'close', 'subscribe']);

export class FaultyStore implements JobStore {
  readonly kind: string;
  readonly inner: JobStore;
  /** Faults injected so far, by method and by kind. */
  readonly injected = { total: 0, byMethod: {} as Record<string, number>, byKind: {} as Record<FaultKind, number> };
  /** Calls made so far, by method (faulty or not). */
  readonly calls: Record<string, number> = {};
  readonly createClaimed?: JobStore['createClaimed'];
  readonly subscribe?: JobStore['subscribe'];
  readonly offerSlots?: JobStore['offerSlots'];
  readonly withdrawSlots?: JobStore['withdrawSlots'];
  #on = false;
  #rate: number;
  /** Methods that got a fault already (each one's first call while on gets one for sure). */
  readonly #faulted = new Set<string>();
  readonly #maxHangMs: number;
  readonly #random: () => number;

  constructor(inner: JobStore, options: FaultyStoreOptions = {}) {
    this.inner = inner;
    this.kind = inner.kind;
    this.#rate = options.rate ?? 0.2;
    this.#maxHangMs = options.maxHangMs ?? 500;
    this.#random = options.random ?? Math.random;
    for (const kind of KINDS) this.injected.byKind[kind] = 0;
    // Only what the inner store offers: the runtime takes other paths when a store lacks them.
    const createClaimed = inner.createClaimed;
    if (createClaimed) {
      this.createClaimed = (job: NewJob, lease: { workerId: string; leaseMs: number }) =>
        this.#call('createClaimed', () => createClaimed.call(inner, job, lease));
    }
    const subscribe = inner.subscribe;
    if (subscribe) {
      this.subscribe = (listener: (change: JobChange) => void) => subscribe.call(inner, listener);
    }
    const { offerSlots, withdrawSlots } = inner;
    if (offerSlots && withdrawSlots) {
      this.offerSlots = (offer: SlotOffer) => this.#call('offerSlots', () => offerSlots.call(inner, offer));
      this.withdrawSlots = (workerId: string) => this.#call('withdrawSlots', () => withdrawSlots.call(inner, workerId));
    }
  }

  /** Start injecting faults. */
  on(): void {
    this.#on = true;
  }

  /** Stop injecting faults (calls already hanging finish as they were going to). */
  off(): void {
    this.#on = false;
  }

  /** Change the fraction of calls that get a fault (1: a full outage). */
  setRate(rate: number): void {
    this.#rate = rate;
  }

  async #call<T>(method: string, call: () => Promise<T>): Promise<T> {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
    if (!this.#on || SPARED.has(method)) return call();
    if (this.#faulted.has(method) && this.#random() >= this.#rate) return call();
    this.#faulted.add(method);
    const kind = KINDS[Math.floor(this.#random() * KINDS.length)] as FaultKind;
    this.injected.total += 1;
    this.injected.byKind[kind] += 1;
    this.injected.byMethod[method] = (this.injected.byMethod[method] ?? 0) + 1;
    const hang = () => new Promise((resolve) => setTimeout(resolve, Math.round(this.#random() * this.#maxHangMs)));
    switch (kind) {
      case 'reject':
        throw new InjectedFault(method, kind);
      case 'hang-reject':
        await hang();
        throw new InjectedFault(method, kind);
      case 'hang-pass':
        await hang();
        return call();
      case 'lost-reply':
        await call();
        throw new InjectedFault(method, kind);
    }
  }

  init(): Promise<void> {
    return this.#call('init', () => this.inner.init());
  }
  create(job: NewJob): Promise<CreateResult> {
    return this.#call('create', () => this.inner.create(job));
  }
  get(id: string) {
    return this.#call('get', () => this.inner.get(id));
  }
  list(options: { owner: string | null; limit: number }) {
    return this.#call('list', () => this.inner.list(options));
  }
  claim(options: ClaimOptions) {
    return this.#call('claim', () => this.inner.claim(options));
  }
  renew(ids: readonly string[], workerId: string, leaseMs: number) {
    return this.#call('renew', () => this.inner.renew(ids, workerId, leaseMs));
  }
  progress(id: string, workerId: string, progress: number, message: string | null) {
    return this.#call('progress', () => this.inner.progress(id, workerId, progress, message));
  }
  complete(...args: Parameters<JobStore['complete']>) {
    return this.#call('complete', () => this.inner.complete(...args));
  }
  fail(...args: Parameters<JobStore['fail']>) {
    return this.#call('fail', () => this.inner.fail(...args));
  }
  cancel(...args: Parameters<JobStore['cancel']>) {
    return this.#call('cancel', () => this.inner.cancel(...args));
  }
  markCanceled(...args: Parameters<JobStore['markCanceled']>) {
    return this.#call('markCanceled', () => this.inner.markCanceled(...args));
  }
  release(id: string, workerId: string) {
    return this.#call('release', () => this.inner.release(id, workerId));
  }
  purgeExpired() {
    return this.#call('purgeExpired', () => this.inner.purgeExpired());
  }
  claimDeliveries(...args: Parameters<JobStore['claimDeliveries']>) {
    return this.#call('claimDeliveries', () => this.inner.claimDeliveries(...args));
  }
  recordDelivery(...args: Parameters<JobStore['recordDelivery']>) {
    return this.#call('recordDelivery', () => this.inner.recordDelivery(...args));
  }
  close(): Promise<void> {
    return this.#call('close', () => this.inner.close());
  }
}
