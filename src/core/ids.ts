// Job ids: 128 bits from the system CSPRNG, base64url (22 characters).
import { randomBytes } from 'node:crypto';

const ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/** A new URL-safe job id with 128 bits of cryptographic randomness. */
export function newJobId(): string {
  return randomBytes(16).toString('base64url');
}

/** Whether `value` has the shape of a job id (anything else is a 404 without a store read). */
export function isJobId(value: string): boolean {
  return ID_PATTERN.test(value);
}
