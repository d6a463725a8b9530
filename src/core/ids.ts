// Job ids: 128 bits from the system CSPRNG, base64url (22 characters).
import { randomFillSync } from 'node:crypto';

const ID_BYTES = 16;
/**
 * Random bytes are drawn from the CSPRNG 4 KiB at a time (one call per 256 ids), as Node does for `randomUUID()`:
 * every accepted job needs an id, and a call into the CSPRNG for each would be the dearest step of accepting it
 * (figures in docs/ARCHITECTURE.md, Performance notes). Each byte is handed out once.
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let offset = POOL_BYTES;

/** The base64url alphabet as character codes. */
const DIGITS = Uint8Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (c) =>
  c.charCodeAt(0),
);

/**
 * A new URL-safe job id with 128 bits of cryptographic randomness: the base64url of 16 pool bytes (what
 * `toString('base64url')` gives), encoded here in one `String.fromCharCode`: for 16 bytes, the call into
 * Buffer's general-purpose encoder costs more than the encoding itself, and it runs on every accept.
 */
export function newJobId(): string {
  if (offset + ID_BYTES > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const p = pool;
  const o = offset;
  offset += ID_BYTES;
  const a = (p[o] << 16) | (p[o + 1] << 8) | p[o + 2];
  const b = (p[o + 3] << 16) | (p[o + 4] << 8) | p[o + 5];
  const c = (p[o + 6] << 16) | (p[o + 7] << 8) | p[o + 8];
  const d = (p[o + 9] << 16) | (p[o + 10] << 8) | p[o + 11];
  const e = (p[o + 12] << 16) | (p[o + 13] << 8) | p[o + 14];
  const f = p[o + 15];
  return String.fromCharCode(
    DIGITS[a >> 18],
    DIGITS[(a >> 12) & 63],
    DIGITS[(a >> 6) & 63],
    DIGITS[a & 63],
    DIGITS[b >> 18],
    DIGITS[(b >> 12) & 63],
    DIGITS[(b >> 6) & 63],
    DIGITS[b & 63],
    DIGITS[c >> 18],
    DIGITS[(c >> 12) & 63],
    DIGITS[(c >> 6) & 63],
    DIGITS[c & 63],
    DIGITS[d >> 18],
    DIGITS[(d >> 12) & 63],
    DIGITS[(d >> 6) & 63],
    DIGITS[d & 63],
    DIGITS[e >> 18],
    DIGITS[(e >> 12) & 63],
    DIGITS[(e >> 6) & 63],
    DIGITS[e & 63],
    DIGITS[f >> 2],
    DIGITS[(f & 3) << 4],
  );
}

/** 1 for the character codes of the base64url alphabet. */
const ID_CHARACTER = new Uint8Array(128);
for (const code of DIGITS) ID_CHARACTER[code] = 1;

/**
 * Whether `value` has the shape of a job id: 22 base64url characters (anything else is a 404 without a store read).
 * A loop over a lookup table rather than a regex: the check is this simple, and it runs on every accept and every
 * status request.
 */
export function isJobId(value: string): boolean {
  if (value.length !== 22) return false;
  for (let i = 0; i < 22; i++) {
    const code = value.charCodeAt(i);
    if (code > 127 || ID_CHARACTER[code] === 0) return false;
  }
  return true;
}
