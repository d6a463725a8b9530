// Job specs for the store tests: `newJob()` builds a NewJob with defaults, named 'task', with a unique id.
import type { NewJob } from '../../src/core/types.js';

let counter = 0;

/** A queued job's spec, `input` numbered in order of creation; `overrides` replace any field. */
export function newJob(overrides: Partial<NewJob> = {}): NewJob {
  counter += 1;
  return {
    id: `job_${Date.now().toString(36)}_${counter}_${Math.random().toString(36).slice(2)}`,
    name: 'task',
    input: { n: counter },
    owner: null,
    idempotencyKey: null,
    requestHash: null,
    maxAttempts: 3,
    callbackUrl: null,
    ...overrides,
  };
}
