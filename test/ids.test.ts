// Job ids are what keeps one caller from reading another's job when no owner is set: 128 random bits each, after a
// time prefix that keeps inserts on the right-most leaves of the stores' id indexes.
import { describe, expect, it } from 'vitest';
import { isJobId, newJobId } from '../src/index.js';

const TIME_DIGITS = '0123456789abcdefghijklmnopqrstuv';

/** The epoch ms of an id's prefix. */
function timeOf(id: string): number {
  let ms = 0;
  for (const char of id.slice(0, 10)) ms = ms * 32 + TIME_DIGITS.indexOf(char);
  return ms;
}

describe('newJobId()', () => {
  it('gives the creation time, then the canonical base64url of 16 bytes, never the same twice, each of the 128 bits random', () => {
    const count = 20_000; // 78 refills of the 4 KiB pool
    const ones = new Array<number>(128).fill(0);
    const seen = new Set<string>();
    const bad: string[] = [];
    const from = Date.now();
    for (let i = 0; i < count; i++) {
      const id = newJobId();
      const random = id.slice(10);
      const bytes = Buffer.from(random, 'base64url');
      if (!isJobId(id) || id.length !== 32 || bytes.length !== 16 || bytes.toString('base64url') !== random) {
        bad.push(id);
      }
      seen.add(id);
      for (let bit = 0; bit < 128; bit++) ones[bit] += (bytes[bit >> 3] >> (7 - (bit & 7))) & 1;
    }
    const to = Date.now();
    expect(bad).toEqual([]);
    expect(seen.size).toBe(count);
    // Each bit is set in about half the ids: 6 standard deviations at 20 000 ids is ±2.1 %.
    const skewed = ones
      .map((n, bit) => ({ bit, share: n / count }))
      .filter(({ share }) => Math.abs(share - 0.5) > 0.025);
    expect(skewed).toEqual([]);
    const times = [...seen].map(timeOf);
    expect(Math.min(...times)).toBeGreaterThanOrEqual(from);
    expect(Math.max(...times)).toBeLessThanOrEqual(to);
  });

  it('sorts ids of later milliseconds after earlier ones, bytewise and under a locale collation', async () => {
    const first = newJobId();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = newJobId();
    expect(timeOf(second)).toBeGreaterThan(timeOf(first));
    expect(first < second).toBe(true);
    expect(first.localeCompare(second, 'en')).toBe(-1);
    // The prefix alone decides: no upper case or punctuation in it for a collation to fold or skip.
    expect(first.slice(0, 10)).toMatch(/^[0-9a-v]{10}$/);
  });
});

describe('isJobId()', () => {
  it('takes a time prefix and 22 base64url characters, or the 22 alone (ids of earlier versions), and nothing else', () => {
    const id = newJobId();
    expect(isJobId(id)).toBe(true);
    expect(isJobId('0123456789AZaz09-_AZaz09-_AZaz09')).toBe(true);
    expect(isJobId('AZaz09-_AZaz09-_AZaz09')).toBe(true);
    const near = [
      '',
      id.slice(1),
      `${id}A`,
      `${id.slice(0, 31)}=`,
      `${id.slice(0, 31)}+`,
      `${id.slice(0, 31)}/`,
      `${id.slice(0, 31)}.`,
      ` ${id.slice(1)}`,
      // The prefix takes 0-9 and a-v only.
      `w${id.slice(1)}`,
      `A${id.slice(1)}`,
      `-${id.slice(1)}`,
      // Ł (U+0141) is 'A' (0x41) in its low 7 bits; é is outside ASCII too.
      `${id.slice(0, 31)}\u0141`,
      `é${id.slice(1)}`,
      `${id.slice(0, 10)}\u0000${id.slice(11)}`,
      id.slice(10, 31),
      `${id.slice(10, 31)}=`,
    ];
    expect(near.filter((value) => isJobId(value))).toEqual([]);
  });
});
