// Job ids: 128 bits from the system CSPRNG, base64url (22 characters).
import { randomFillSync } from 'node:crypto';

const ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

const ID_BYTES = 16;
/**
 * Random bytes are drawn from the CSPRNG 4 KiB at a time (one call per 256 ids, as Node does for
 * `randomUUID()`): a call per id cost more than the rest of the accept path. Each byte is handed out once.
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let offset = POOL_BYTES;

/** A new URL-safe job id with 128 bits of cryptographic randomness. */
export function newJobId(): string {
  if (offset + ID_BYTES > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const start = offset;
  offset += ID_BYTES;
  return pool.toString('base64url', start, offset);
}

/** Whether `value` has the shape of a job id (anything else is a 404 without a store read). */
export function isJobId(value: string): boolean {
  return ID_PATTERN.test(value);
}
