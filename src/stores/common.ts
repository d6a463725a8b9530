// What every store shares: building the record of a new job, the scope of an idempotency key. @internal
import type { JobRecord, NewJob } from '../core/types.js';

/** @internal Build the record a store inserts for a new job. Shared by every store. */
export function newRecord(job: NewJob, now: number): JobRecord {
  return {
    id: job.id,
    name: job.name,
    status: 'queued',
    input: job.input,
    owner: job.owner,
    idempotencyKey: job.idempotencyKey,
    requestHash: job.requestHash,
    progress: null,
    message: null,
    result: undefined,
    resultUrl: null,
    error: null,
    attempt: 0,
    maxAttempts: job.maxAttempts,
    runAt: now,
    leaseOwner: null,
    leaseUntil: null,
    cancelRequested: false,
    callbackUrl: job.callbackUrl,
    deliveryStatus: null,
    deliveryAttempts: 0,
    deliveryNextAt: null,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    expiresAt: null,
    seq: 1,
  };
}

/** @internal The unique scope of an idempotency key: the key within its owner. */
export function keyScope(owner: string | null, key: string): string {
  return `${owner ?? ''}\u0000${key}`;
}
