// Job ids: a millisecond timestamp prefix, then 128 bits from the system CSPRNG (32 URL-safe characters).
import { randomFillSync } from 'node:crypto';

/*
 * Why a time prefix. The stores index jobs by id (the primary key). With ids wholly random, each insert lands on a
 * random leaf of that index: once the index outgrows the cache (a day of retained jobs), accepting a job reads a
 * cold page and, after each checkpoint, writes a full page image for it. With ids that start with their creation
 * time, inserts land on the right-most leaves, which stay in cache however large the table grows.
 *
 * Security default: ids stay unguessable. After the prefix come 128 random bits (never fewer than 122, the
 * randomness of a UUIDv4), drawn from the CSPRNG; the prefix adds no guessable part to them. What the prefix
 * tells is when the job was created, to the one who holds the id, which the status document (`createdAt`) tells
 * them anyway.
 *
 * Layout: 10 characters of the creation time in epoch ms (base 32, digits then `a`–`v`, most significant first, so
 * that ids sort by time bytewise and under the usual locale collations alike: no upper case, no punctuation), then
 * 22 characters: the base64url of 16 random bytes. Ids of earlier versions (the 22 random characters alone) stay
 * valid: `isJobId` takes both shapes, so existing status URLs and cursors keep working.
 */

const RANDOM_BYTES = 16;
const TIME_CHARS = 10;
const RANDOM_CHARS = 22;
/** The length of an id made here; the ids of earlier versions are the random part alone. */
const ID_CHARS = TIME_CHARS + RANDOM_CHARS;

/**
 * Random bytes are drawn from the CSPRNG 4 KiB at a time (one call per 256 ids), as Node does for `randomUUID()`:
 * every accepted job needs an id, and a call into the CSPRNG for each would be the dearest step of accepting it.
 * Each byte is handed out once.
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let offset = POOL_BYTES;

/** The base64url alphabet as character codes. */
const DIGITS = Uint8Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (c) =>
  c.charCodeAt(0),
);
/** The time prefix's alphabet (base 32, in ascending order). */
const TIME_DIGITS = '0123456789abcdefghijklmnopqrstuv';

/** The prefix of the last millisecond an id was made in, reused while the clock stays in it. */
let prefixMs = -1;
let prefix = '';

function timePrefix(now: number): string {
  if (now !== prefixMs) {
    prefixMs = now;
    let text = '';
    let rest = Math.max(0, Math.floor(now));
    for (let i = 0; i < TIME_CHARS; i++) {
      text = TIME_DIGITS[rest % 32] + text;
      rest = Math.floor(rest / 32);
    }
    prefix = text;
  }
  return prefix;
}

/**
 * A new URL-safe job id: the creation time, then 128 bits of cryptographic randomness (the base64url of 16 pool
 * bytes, what `toString('base64url')` gives, encoded here in one `String.fromCharCode`: for 16 bytes, the call into
 * Buffer's general-purpose encoder costs more than the encoding itself, and it runs on every accept).
 */
export function newJobId(): string {
  if (offset + RANDOM_BYTES > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const p = pool;
  const o = offset;
  offset += RANDOM_BYTES;
  const a = (p[o] << 16) | (p[o + 1] << 8) | p[o + 2];
  const b = (p[o + 3] << 16) | (p[o + 4] << 8) | p[o + 5];
  const c = (p[o + 6] << 16) | (p[o + 7] << 8) | p[o + 8];
  const d = (p[o + 9] << 16) | (p[o + 10] << 8) | p[o + 11];
  const e = (p[o + 12] << 16) | (p[o + 13] << 8) | p[o + 14];
  const f = p[o + 15];
  return (
    timePrefix(Date.now()) +
    String.fromCharCode(
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
    )
  );
}

/** 1 for the character codes of the base64url alphabet; 2 more for those of the time prefix's. */
const ID_CHARACTER = new Uint8Array(128);
for (const code of DIGITS) ID_CHARACTER[code] = 1;
for (let i = 0; i < TIME_DIGITS.length; i++) ID_CHARACTER[TIME_DIGITS.charCodeAt(i)] |= 2;

/**
 * Whether `value` has the shape of a job id (anything else is a 404 without a store read): 10 time characters and
 * 22 base64url characters, or, an id of an earlier version, the 22 base64url characters alone. A loop over a lookup
 * table rather than a regex: the check is this simple, and it runs on every accept and every status request.
 */
export function isJobId(value: string): boolean {
  const length = value.length;
  if (length !== ID_CHARS && length !== RANDOM_CHARS) return false;
  const timeChars = length - RANDOM_CHARS;
  for (let i = 0; i < length; i++) {
    const code = value.charCodeAt(i);
    if (code > 127 || (ID_CHARACTER[code] & (i < timeChars ? 2 : 1)) === 0) return false;
  }
  return true;
}
