// The operator's views (the dashboard's list, counts, throughput and timings) computed over job records in process:
// the MemoryStore's, and any store that holds records without a query language (the SQL stores compute them in SQL).
import type { AdminListOptions, JobCount, JobTimings, ListPosition, ThroughputBucket } from '../core/store.js';
import type { JobRecord } from '../core/types.js';
import { percentiles } from './common.js';

/** Whether `a` comes after (is older than) `b` in `JobStore.list` order: `createdAt` descending, then id descending. */
export function listedAfter(a: ListPosition, b: ListPosition): boolean {
  return a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
}

/** One page of `adminList`: the records that pass its filters, newest first, after its cursor. */
export function adminPage<T extends { record: JobRecord }>(jobs: Iterable<T>, options: AdminListOptions): T[] {
  const { statuses, name, owner, from, to, before } = options;
  const page = [...jobs].filter(({ record: r }) => {
    if (statuses !== undefined && !statuses.includes(r.status)) return false;
    if (name !== undefined && r.name !== name) return false;
    if (owner !== undefined && r.owner !== owner) return false;
    if (from !== undefined && r.createdAt < from) return false;
    if (to !== undefined && r.createdAt >= to) return false;
    return before === undefined || listedAfter(r, before);
  });
  page.sort((a, b) => (listedAfter(a.record, b.record) ? 1 : -1));
  return page.slice(0, Math.max(0, options.limit));
}

/** `countJobs`: how many jobs there are of each status and name. */
export function countJobs(jobs: Iterable<{ name: string; status: JobRecord['status'] }>): JobCount[] {
  const counts = new Map<string, JobCount>();
  for (const { name, status } of jobs) {
    const key = `${status}\u0000${name}`;
    const count = counts.get(key) ?? { name, status, count: 0 };
    count.count += 1;
    counts.set(key, count);
  }
  return [...counts.values()];
}

/** `throughput`: the jobs of `finished` that ended within the window, by name, status and bucket of time. */
export function throughput(finished: Iterable<JobRecord>, windowMs: number, bucketMs: number): ThroughputBucket[] {
  const buckets = new Map<string, ThroughputBucket>();
  for (const r of ended(finished, windowMs)) {
    const at = Math.floor(r.finishedAt / bucketMs) * bucketMs;
    const key = `${at}\u0000${r.name}`;
    const bucket = buckets.get(key) ?? { name: r.name, at, complete: 0, failed: 0, canceled: 0 };
    if (r.status === 'complete' || r.status === 'failed' || r.status === 'canceled') bucket[r.status] += 1;
    buckets.set(key, bucket);
  }
  return [...buckets.values()];
}

/** `timings`: wait (created to started) and run (started to finished) percentiles of the jobs ended in the window. */
export function timings(finished: Iterable<JobRecord>, windowMs: number): JobTimings {
  const started = [...ended(finished, windowMs)].filter((r) => r.startedAt !== null);
  return {
    waitMs: percentiles(started.map((r) => (r.startedAt as number) - r.createdAt)),
    runMs: percentiles(started.map((r) => r.finishedAt - (r.startedAt as number))),
  };
}

function* ended(finished: Iterable<JobRecord>, windowMs: number): Iterable<JobRecord & { finishedAt: number }> {
  const since = Date.now() - windowMs;
  for (const r of finished)
    if (r.finishedAt !== null && r.finishedAt >= since) yield r as JobRecord & { finishedAt: number };
}
