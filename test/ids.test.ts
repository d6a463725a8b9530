// Job ids are what keeps one caller from reading another's job when no owner is set: 128 random bits each.
import { describe, expect, it } from 'vitest';
import { isJobId, newJobId } from '../src/index.js';

describe('newJobId()', () => {
  it('gives the canonical base64url of 16 bytes, never the same twice, each of the 128 bits random', () => {
    const count = 20_000; // 78 refills of the 4 KiB pool
    const ones = new Array<number>(128).fill(0);
    const seen = new Set<string>();
    const bad: string[] = [];
    for (let i = 0; i < count; i++) {
      const id = newJobId();
      const bytes = Buffer.from(id, 'base64url');
      if (!isJobId(id) || bytes.length !== 16 || bytes.toString('base64url') !== id) bad.push(id);
      seen.add(id);
      for (let bit = 0; bit < 128; bit++) ones[bit] += (bytes[bit >> 3] >> (7 - (bit & 7))) & 1;
    }
    expect(bad).toEqual([]);
    expect(seen.size).toBe(count);
    // Each bit is set in about half the ids: 6 standard deviations at 20 000 ids is ±2.1 %.
    const skewed = ones
      .map((n, bit) => ({ bit, share: n / count }))
      .filter(({ share }) => Math.abs(share - 0.5) > 0.025);
    expect(skewed).toEqual([]);
  });
});

describe('isJobId()', () => {
  it('takes exactly 22 base64url characters and nothing else', () => {
    const id = newJobId();
    expect(isJobId(id)).toBe(true);
    expect(isJobId('AZaz09-_AZaz09-_AZaz09')).toBe(true);
    const near = [
      '',
      id.slice(1),
      `${id}A`,
      `${id.slice(0, 21)}=`,
      `${id.slice(0, 21)}+`,
      `${id.slice(0, 21)}/`,
      `${id.slice(0, 21)}.`,
      ` ${id.slice(1)}`,
      // Ł (U+0141) is 'A' (0x41) in its low 7 bits; é is outside ASCII too.
      `${id.slice(0, 21)}\u0141`,
      `é${id.slice(1)}`,
      `${id.slice(0, 10)}\u0000${id.slice(11)}`,
    ];
    expect(near.filter((value) => isJobId(value))).toEqual([]);
  });
});
