// Parsers for the request headers the contract reads: Idempotency-Key, Prefer, Last-Event-ID.

/** Longest idempotency key accepted. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/**
 * Parse an `Idempotency-Key` header: a Structured Field string (`"abc"`, with `\"` and `\\` escapes) as the
 * IETF httpapi draft says, or a bare token for lenient clients. Returns the key, or `null` when malformed.
 */
export function parseIdempotencyKey(value: string): string | null {
  const raw = value.trim();
  let key: string;
  if (raw.startsWith('"')) {
    if (raw.length < 2 || !raw.endsWith('"')) return null;
    key = '';
    for (let i = 1; i < raw.length - 1; i++) {
      const ch = raw.charCodeAt(i);
      if (ch === 0x5c) {
        const next = raw[i + 1];
        if (next !== '"' && next !== '\\') return null;
        if (i + 1 >= raw.length - 1) return null;
        key += next;
        i++;
      } else if (ch === 0x22 || ch < 0x20 || ch > 0x7e) {
        return null;
      } else {
        key += raw[i];
      }
    }
  } else {
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~:/-]+$/.test(raw)) return null;
    key = raw;
  }
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) return null;
  return key;
}

/** The `wait` preference of a `Prefer` header (RFC 7240), in whole seconds, or `undefined`. */
export function parsePreferWait(value: string | undefined): number | undefined {
  if (!value) return undefined;
  for (const part of value.split(/[,;]/)) {
    const match = /^\s*wait\s*=\s*"?(\d{1,9})"?\s*$/i.exec(part);
    if (match) return Number(match[1]);
  }
  return undefined;
}

/** A `Last-Event-ID` as the job sequence number it names, or 0 when absent or not a number. */
export function parseLastEventId(value: string | undefined): number {
  if (!value || !/^\d{1,15}$/.test(value.trim())) return 0;
  return Number(value.trim());
}
