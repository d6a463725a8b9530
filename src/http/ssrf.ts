// Callback URL checks against server-side request forgery: scheme, userinfo, length, and every resolved address.
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';

/** One resolved address, as `dns.promises.lookup(host, { all: true })` gives it. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses. Inject one in tests so no real DNS query leaves the machine. */
export type LookupFunction = (host: string) => Promise<ResolvedAddress[]>;

export interface CheckCallbackUrlOptions {
  /**
   * Origins (`http://127.0.0.1:4000`) allowed whatever their addresses: loopback receivers in development and
   * tests. Compared after normalising both sides with `new URL(x).origin`.
   */
  allowOrigins?: readonly string[];
  /** Host name resolver. Default: `dns.promises.lookup(host, { all: true, verbatim: true })`. */
  lookup?: LookupFunction;
}

export type CheckCallbackUrlResult =
  | {
      ok: true;
      url: URL;
      /** The checked addresses: connect to these, not to a second resolution of the host name. */
      addresses: ResolvedAddress[];
    }
  | {
      ok: false;
      reason: string;
      /** True when the refusal may not hold later (DNS lookup failed), so a delivery may be retried. */
      temporary?: boolean;
    };

/** Longest callback URL accepted, in characters. */
export const MAX_CALLBACK_URL_LENGTH = 2048;

/**
 * Check that `raw` is a callback URL the server may POST to: `http:` or `https:`, no userinfo, at most 2048
 * characters, and a host whose every address is public (not loopback, private, link-local, CGNAT, multicast,
 * reserved, documentation…) — unless its origin is in `allowOrigins`. Address literals in any form the WHATWG
 * URL parser accepts (`2130706433`, `0x7f.1`, `[::ffff:7f00:1]`) are normalised first and need no lookup.
 * Run it at submit and again right before each delivery (DNS rebinding), and connect to `addresses`.
 */
export async function checkCallbackUrl(
  raw: string,
  options: CheckCallbackUrlOptions = {},
): Promise<CheckCallbackUrlResult> {
  if (typeof raw !== 'string' || raw.length === 0) return refuse('the callback URL must be a non-empty string');
  if (raw.length > MAX_CALLBACK_URL_LENGTH) {
    return refuse(`the callback URL is longer than ${MAX_CALLBACK_URL_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return refuse('the callback URL is not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return refuse('the callback URL must use http or https');
  if (url.username !== '' || url.password !== '' || hasUserinfo(raw)) {
    return refuse('the callback URL must not contain credentials');
  }
  const host = bareHost(url.hostname);
  if (host === '') return refuse('the callback URL has no host');
  const allowed = isAllowedOrigin(url.origin, options.allowOrigins);
  if (!allowed && isLocalName(host)) return refuse('the callback URL points to a local host name');

  let addresses: ResolvedAddress[];
  const literal = isIP(host);
  if (literal !== 0) {
    addresses = [{ address: host, family: literal as 4 | 6 }];
  } else {
    const lookup = options.lookup ?? defaultLookup;
    try {
      const found = await lookup(host);
      addresses = [];
      for (const entry of Array.isArray(found) ? found : []) {
        const family = isIP(stripZone(String(entry?.address ?? '')));
        if (family === 0) return refuse('the callback host resolved to an invalid address');
        addresses.push({ address: String(entry.address), family: family as 4 | 6 });
      }
    } catch {
      return { ok: false, reason: 'the callback host could not be resolved', temporary: true };
    }
    if (addresses.length === 0) return { ok: false, reason: 'the callback host has no address', temporary: true };
  }
  if (!allowed) {
    for (const { address } of addresses) {
      if (!isPublicAddress(address)) {
        return refuse('the callback URL resolves to a private, loopback, link-local or reserved address');
      }
    }
  }
  return { ok: true, url, addresses };
}

function refuse(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}

async function defaultLookup(host: string): Promise<ResolvedAddress[]> {
  const found = await dnsPromises.lookup(host, { all: true, verbatim: true });
  return found.map((entry) => ({ address: entry.address, family: entry.family === 6 ? 6 : 4 }));
}

/** The WHATWG parser drops an empty userinfo (`http://:@host`); refuse any `@` in the authority all the same. */
function hasUserinfo(raw: string): boolean {
  const match = /^[a-z][a-z0-9+.-]*:[\\/]*([^\\/?#]*)/i.exec(raw.trim());
  return match?.[1].includes('@') === true;
}

function isAllowedOrigin(origin: string, allowOrigins: readonly string[] | undefined): boolean {
  if (!allowOrigins) return false;
  for (const entry of allowOrigins) {
    const normalised = normaliseOrigin(entry);
    if (normalised !== null && normalised === origin) return true;
  }
  return false;
}

/** `new URL(x).origin` of an http(s) URL, or null. @internal */
export function normaliseOrigin(value: string): string | null {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return url.origin;
  } catch {
    return null;
  }
}

/** `localhost` and `*.localhost` (RFC 6761) are loopback whatever DNS says. */
function isLocalName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.+$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

function bareHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

function stripZone(address: string): string {
  const percent = address.indexOf('%');
  return percent === -1 ? address : address.slice(0, percent);
}

// ---------------------------------------------------------------------------------------------------------------
// Address classification

interface Cidr {
  family: 4 | 6;
  bits: number;
  prefix: number;
  base: bigint;
}

/** IPv4 ranges that are not globally reachable (IANA special-purpose registry). */
const V4_REFUSED = [
  '0.0.0.0/8', // "this network", unspecified
  '10.0.0.0/8', // private
  '100.64.0.0/10', // CGNAT shared address space
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local (cloud metadata endpoints)
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // documentation TEST-NET-1
  '192.88.99.0/24', // deprecated 6to4 relay anycast
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // documentation TEST-NET-2
  '203.0.113.0/24', // documentation TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and 255.255.255.255 broadcast
].map(parseCidr);

/** IPv6 ranges inside global unicast 2000::/3 that are not globally reachable. */
const V6_REFUSED_IN_GLOBAL = [
  '2001::/23', // IETF protocol assignments: Teredo, benchmarking 2001:2::/48, ORCHID
  '2001:db8::/32', // documentation
  '3fff::/20', // documentation (RFC 9637)
].map(parseCidr);

const V6_GLOBAL_UNICAST = parseCidr('2000::/3');
const V6_V4_MAPPED = parseCidr('::ffff:0:0/96');
const V6_NAT64 = parseCidr('64:ff9b::/96');
const V6_6TO4 = parseCidr('2002::/16');

/**
 * Whether `address` (an IPv4 or IPv6 literal; brackets and a zone id are tolerated) is a public unicast address
 * a server may send a webhook to. IPv4 addresses embedded in IPv4-mapped (`::ffff:0:0/96`), NAT64
 * (`64:ff9b::/96`) and 6to4 (`2002::/16`) IPv6 addresses are judged as IPv4. Anything that does not parse is
 * not public.
 */
export function isPublicAddress(address: string): boolean {
  if (typeof address !== 'string') return false;
  const parsed = parseIp(stripZone(bareHost(address.trim())));
  if (parsed === null) return false;
  if (parsed.family === 4) return isPublicV4(parsed.value);
  const value = parsed.value;
  if (inCidr(V6_V4_MAPPED, value) || inCidr(V6_NAT64, value)) return isPublicV4(value & 0xffff_ffffn);
  if (inCidr(V6_6TO4, value)) return isPublicV4((value >> 80n) & 0xffff_ffffn);
  // Everything outside 2000::/3 is refused: ::, ::1, ::/96, 100::/64, 64:ff9b:1::/48, fc00::/7, fe80::/10,
  // fec0::/10, ff00::/8 and unassigned space.
  if (!inCidr(V6_GLOBAL_UNICAST, value)) return false;
  return !V6_REFUSED_IN_GLOBAL.some((cidr) => inCidr(cidr, value));
}

function isPublicV4(value: bigint): boolean {
  return !V4_REFUSED.some((cidr) => inCidr(cidr, value));
}

/**
 * Whether `address` lies in `cidr` (`10.0.0.0/8`, `fe80::/10`). An IPv4 address never matches an IPv6 range nor
 * the reverse. @internal
 */
export function cidrContains(cidr: string, address: string): boolean {
  const range = parseCidr(cidr);
  const parsed = parseIp(stripZone(address));
  return parsed !== null && parsed.family === range.family && inCidr(range, parsed.value);
}

function inCidr(cidr: Cidr, value: bigint): boolean {
  const shift = BigInt(cidr.bits - cidr.prefix);
  return value >> shift === cidr.base >> shift;
}

function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const parsed = slash === -1 ? null : parseIp(text.slice(0, slash));
  const prefixText = slash === -1 ? '' : text.slice(slash + 1);
  if (parsed === null || !/^\d{1,3}$/.test(prefixText)) throw new TypeError(`respond-async: invalid CIDR ${text}`);
  const bits = parsed.family === 4 ? 32 : 128;
  const prefix = Number(prefixText);
  if (prefix > bits) throw new TypeError(`respond-async: invalid CIDR ${text}`);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((parsed.value & hostMask) !== 0n) throw new TypeError(`respond-async: CIDR ${text} has host bits set`);
  return { family: parsed.family, bits, prefix, base: parsed.value };
}

/** Parse a canonical IPv4 dotted quad or an IPv6 literal (no brackets, no zone) to its integer value. */
function parseIp(text: string): { family: 4 | 6; value: bigint } | null {
  const family = isIP(text);
  if (family === 4) {
    const value = parseV4(text);
    return value === null ? null : { family: 4, value };
  }
  if (family === 6) {
    const value = parseV6(text);
    return value === null ? null : { family: 6, value };
  }
  return null;
}

function parseV4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const byte = Number(part);
    if (byte > 255) return null;
    value = (value << 8n) | BigInt(byte);
  }
  return value;
}

function parseV6(text: string): bigint | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return null;
  let words: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    words = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    words = head;
  }
  if (words.length !== 8) return null;
  let value = 0n;
  for (const word of words) value = (value << 16n) | BigInt(word);
  return value;
}

/** The 16-bit words of one side of `::`; a trailing dotted quad counts as two words. */
function groups(side: string): number[] | null {
  if (side === '') return [];
  const parts = side.split(':');
  const words: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (i === parts.length - 1 && part.includes('.')) {
      const v4 = parseV4(part);
      if (v4 === null) return null;
      words.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
    } else {
      if (!/^[0-9a-f]{1,4}$/i.test(part)) return null;
      words.push(Number.parseInt(part, 16));
    }
  }
  return words;
}
