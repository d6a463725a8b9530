// SSRF checks of callback URLs. No test here sends traffic anywhere: address literals need no lookup, and host
// names are resolved by an injected fake `lookup`.
import { BlockList } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkCallbackUrl, cidrContains, isPublicAddress, type ResolvedAddress } from '../src/http/ssrf.js';

/** A lookup that must not be called: address literals are checked without DNS. */
const noLookup = async (host: string): Promise<ResolvedAddress[]> => {
  throw new Error(`unexpected lookup of ${host}`);
};

function fakeLookup(table: Record<string, ResolvedAddress[]>) {
  const calls: string[] = [];
  const lookup = async (host: string): Promise<ResolvedAddress[]> => {
    calls.push(host);
    const found = table[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };
  return { lookup, calls };
}

describe('checkCallbackUrl refuses non-public address literals in any form', () => {
  const refused: Array<[string, string]> = [
    ['loopback', 'http://127.0.0.1/hook'],
    ['loopback, other /8 address', 'http://127.255.0.7/hook'],
    ['decimal loopback', 'http://2130706433/hook'],
    ['octal loopback', 'http://0177.0.0.1/hook'],
    ['hex short loopback', 'http://0x7f.1/hook'],
    ['short loopback', 'http://127.1/hook'],
    ['trailing dot loopback', 'http://127.0.0.1./hook'],
    ['IPv4-mapped dotted', 'http://[::ffff:127.0.0.1]/hook'],
    ['IPv4-mapped hex', 'http://[::ffff:7f00:1]/hook'],
    ['IPv4-mapped private', 'http://[::ffff:10.1.2.3]/hook'],
    ['NAT64 private', 'http://[64:ff9b::10.0.0.1]/hook'],
    ['NAT64 loopback hex', 'http://[64:ff9b::7f00:1]/hook'],
    ['local-use NAT64', 'http://[64:ff9b:1::808:808]/hook'],
    ['6to4 of a private address', 'http://[2002:a00:1::1]/hook'],
    ['IPv6 unspecified', 'http://[::]/hook'],
    ['IPv6 loopback', 'http://[::1]:8080/hook'],
    ['IPv4-compatible loopback', 'http://[::127.0.0.1]/hook'],
    ['IPv4 unspecified', 'http://0.0.0.0/hook'],
    ['IPv4 0/8', 'http://0.1.2.3/hook'],
    ['decimal zero', 'http://0/hook'],
    ['private 10/8', 'http://10.0.0.1/hook'],
    ['private 172.16/12 low', 'http://172.16.0.1/hook'],
    ['private 172.16/12 high', 'http://172.31.255.254/hook'],
    ['private 192.168/16', 'http://192.168.1.1/hook'],
    ['CGNAT', 'http://100.64.0.1/hook'],
    ['CGNAT high', 'http://100.127.255.255/hook'],
    ['link-local (metadata)', 'http://169.254.169.254/latest/meta-data'],
    ['IPv6 link-local', 'http://[fe80::1]/hook'],
    ['IPv6 link-local high', 'http://[febf::1]/hook'],
    ['IPv6 site-local', 'http://[fec0::1]/hook'],
    ['IPv6 unique-local fc', 'http://[fc00::1]/hook'],
    ['IPv6 unique-local fd', 'http://[fd12:3456::1]/hook'],
    ['IPv4 multicast', 'http://224.0.0.1/hook'],
    ['IPv4 multicast high', 'http://239.255.255.250/hook'],
    ['IPv6 multicast', 'http://[ff02::1]/hook'],
    ['broadcast', 'http://255.255.255.255/hook'],
    ['reserved 240/4', 'http://240.0.0.1/hook'],
    ['benchmarking 198.18/15', 'http://198.19.255.1/hook'],
    ['IPv6 benchmarking', 'http://[2001:2::1]/hook'],
    ['TEST-NET-1', 'http://192.0.2.10/hook'],
    ['TEST-NET-2', 'http://198.51.100.10/hook'],
    ['TEST-NET-3', 'http://203.0.113.10/hook'],
    ['IETF protocol assignments', 'http://192.0.0.8/hook'],
    ['IPv6 documentation', 'http://[2001:db8::1]/hook'],
    ['IPv6 documentation 3fff::/20', 'http://[3fff:fff::1]/hook'],
    ['Teredo', 'http://[2001:0:4136:e378::1]/hook'],
    ['https loopback', 'https://127.0.0.1:8443/hook'],
  ];
  it.each(refused)('%s: %s', async (_label, url) => {
    const result = await checkCallbackUrl(url, { lookup: noLookup });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.temporary).toBeUndefined();
  });

  it('refuses localhost names without resolving them', async () => {
    for (const url of ['http://localhost/hook', 'http://LOCALHOST.:3000/', 'http://api.localhost/hook']) {
      expect((await checkCallbackUrl(url, { lookup: noLookup })).ok).toBe(false);
    }
  });
});

describe('checkCallbackUrl refuses bad URLs', () => {
  const refused: Array<[string, string]> = [
    ['ftp', 'ftp://93.184.216.34/file'],
    ['javascript', 'javascript:alert(1)'],
    ['data', 'data:text/plain,hi'],
    ['file', 'file:///etc/passwd'],
    ['userinfo', 'http://user:pass@93.184.216.34/hook'],
    ['user only', 'http://user@93.184.216.34/hook'],
    ['empty userinfo', 'http://:@93.184.216.34/hook'],
    ['bare @', 'http://@93.184.216.34/hook'],
    ['relative', '/hook'],
    ['garbage', 'not a url'],
    ['empty', ''],
    ['too long', `http://93.184.216.34/${'a'.repeat(2048)}`],
  ];
  it.each(refused)('%s', async (_label, url) => {
    expect((await checkCallbackUrl(url, { lookup: noLookup })).ok).toBe(false);
  });

  it('accepts a URL of exactly 2048 characters', async () => {
    const base = 'http://93.184.216.34/';
    const url = base + 'a'.repeat(2048 - base.length);
    expect(url.length).toBe(2048);
    expect((await checkCallbackUrl(url, { lookup: noLookup })).ok).toBe(true);
  });
});

describe('checkCallbackUrl with public addresses and host names', () => {
  it('accepts a public IPv4 or IPv6 literal without a lookup', async () => {
    const v4 = await checkCallbackUrl('https://93.184.216.34/hook?x=1', { lookup: noLookup });
    expect(v4).toMatchObject({ ok: true, addresses: [{ address: '93.184.216.34', family: 4 }] });
    const v6 = await checkCallbackUrl('https://[2606:4700::1]:8443/hook', { lookup: noLookup });
    expect(v6).toMatchObject({ ok: true, addresses: [{ address: '2606:4700::1', family: 6 }] });
    if (v6.ok) expect(v6.url.host).toBe('[2606:4700::1]:8443');
  });

  it('resolves a host name and returns every checked address', async () => {
    const { lookup, calls } = fakeLookup({
      'hooks.example.com': [
        { address: '93.184.216.34', family: 4 },
        { address: '2606:4700::1', family: 6 },
      ],
    });
    const result = await checkCallbackUrl('https://Hooks.Example.com/cb', { lookup });
    expect(calls).toEqual(['hooks.example.com']);
    expect(result).toMatchObject({
      ok: true,
      addresses: [
        { address: '93.184.216.34', family: 4 },
        { address: '2606:4700::1', family: 6 },
      ],
    });
  });

  it('refuses a host name when any of its addresses is not public', async () => {
    const { lookup } = fakeLookup({
      'mixed.example.com': [
        { address: '93.184.216.34', family: 4 },
        { address: '10.0.0.5', family: 4 },
      ],
      'mapped.example.com': [{ address: '::ffff:169.254.169.254', family: 6 }],
      'zoned.example.com': [{ address: 'fe80::1%eth0', family: 6 }],
    });
    expect((await checkCallbackUrl('https://mixed.example.com/cb', { lookup })).ok).toBe(false);
    expect((await checkCallbackUrl('https://mapped.example.com/cb', { lookup })).ok).toBe(false);
    expect((await checkCallbackUrl('https://zoned.example.com/cb', { lookup })).ok).toBe(false);
  });

  it('refuses, as temporary, a host name that does not resolve or resolves to nothing', async () => {
    const { lookup } = fakeLookup({ 'empty.example.com': [] });
    const missing = await checkCallbackUrl('https://missing.example.com/cb', { lookup });
    expect(missing).toMatchObject({ ok: false, temporary: true });
    const empty = await checkCallbackUrl('https://empty.example.com/cb', { lookup });
    expect(empty).toMatchObject({ ok: false, temporary: true });
  });

  it('refuses a host name resolving to something that is not an address', async () => {
    const lookup = async () => [{ address: 'evil', family: 4 as const }];
    expect((await checkCallbackUrl('https://odd.example.com/cb', { lookup })).ok).toBe(false);
  });
});

describe('allowOrigins', () => {
  it('admits exactly the listed origin, normalised', async () => {
    const allowOrigins = ['http://127.0.0.1:4000/'];
    expect((await checkCallbackUrl('http://127.0.0.1:4000/hook', { allowOrigins, lookup: noLookup })).ok).toBe(true);
    expect((await checkCallbackUrl('http://0x7f.1:4000/x', { allowOrigins, lookup: noLookup })).ok).toBe(true);
    expect((await checkCallbackUrl('http://127.0.0.1:4001/hook', { allowOrigins, lookup: noLookup })).ok).toBe(false);
    expect((await checkCallbackUrl('https://127.0.0.1:4000/hook', { allowOrigins, lookup: noLookup })).ok).toBe(false);
    expect((await checkCallbackUrl('http://127.0.0.2:4000/hook', { allowOrigins, lookup: noLookup })).ok).toBe(false);
  });

  it('treats default ports alike on both sides', async () => {
    const allowOrigins = ['http://10.0.0.7:80'];
    expect((await checkCallbackUrl('http://10.0.0.7/hook', { allowOrigins, lookup: noLookup })).ok).toBe(true);
  });

  it('resolves an allowed host name and returns its addresses unchecked', async () => {
    const { lookup } = fakeLookup({ 'receiver.test': [{ address: '127.0.0.1', family: 4 }] });
    const result = await checkCallbackUrl('http://receiver.test:4000/hook', {
      allowOrigins: ['http://receiver.test:4000'],
      lookup,
    });
    expect(result).toMatchObject({ ok: true, addresses: [{ address: '127.0.0.1', family: 4 }] });
    expect(
      (
        await checkCallbackUrl('http://localhost:4000/', {
          allowOrigins: ['http://localhost:4000'],
          lookup: async () => [{ address: '127.0.0.1', family: 4 }],
        })
      ).ok,
    ).toBe(true);
  });

  it('ignores malformed or non-http allowed origins and never admits userinfo', async () => {
    const allowOrigins = ['nonsense', 'ftp://127.0.0.1:4000', 'http://127.0.0.1:4000'];
    expect((await checkCallbackUrl('http://127.0.0.1:4001/', { allowOrigins, lookup: noLookup })).ok).toBe(false);
    expect((await checkCallbackUrl('http://u:p@127.0.0.1:4000/', { allowOrigins, lookup: noLookup })).ok).toBe(false);
  });
});

describe('isPublicAddress', () => {
  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '1.1.1.1',
    '172.15.255.255',
    '172.32.0.0',
    '100.63.255.255',
    '100.128.0.0',
    '198.17.255.255',
    '198.20.0.0',
    '223.255.255.255',
    '2606:4700::1',
    '2a00:1450:4001:81c::200e',
    '2001:4860:4860::8888',
    '::ffff:93.184.216.34',
    '64:ff9b::5db8:d822',
    '2002:5db8:d822::1',
    '[2606:4700::1]',
  ])('%s is public', (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });

  it.each([
    '127.0.0.1',
    '::1',
    '::',
    '0.0.0.0',
    '10.255.255.255',
    '172.16.0.0',
    '192.168.0.1',
    '169.254.0.1',
    '100.64.0.0',
    '198.18.0.0',
    '224.0.0.0',
    '240.0.0.0',
    '255.255.255.255',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::',
    'fdff:ffff::1',
    'fec0::1',
    'ff00::',
    '::ffff:7f00:1',
    '::ffff:0a00:0001',
    '64:ff9b::a00:1',
    '64:ff9b::c0a8:101',
    '::ffff:0:7f00:1',
    '100::1',
    '2001:db8::',
    '0177.0.0.1',
    '127.1',
    '2130706433',
    'localhost',
    '',
    'not an address',
    '1.2.3.4.5',
    '1::2::3',
  ])('%s is not public', (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });
});

describe('CIDR matcher', () => {
  it('matches range boundaries', () => {
    expect(cidrContains('172.16.0.0/12', '172.16.0.0')).toBe(true);
    expect(cidrContains('172.16.0.0/12', '172.31.255.255')).toBe(true);
    expect(cidrContains('172.16.0.0/12', '172.32.0.0')).toBe(false);
    expect(cidrContains('172.16.0.0/12', '172.15.255.255')).toBe(false);
    expect(cidrContains('0.0.0.0/0', '255.255.255.255')).toBe(true);
    expect(cidrContains('1.2.3.4/32', '1.2.3.4')).toBe(true);
    expect(cidrContains('1.2.3.4/32', '1.2.3.5')).toBe(false);
    expect(cidrContains('fe80::/10', 'febf:ffff::')).toBe(true);
    expect(cidrContains('fe80::/10', 'fec0::')).toBe(false);
    expect(cidrContains('::/0', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(true);
    expect(cidrContains('::1/128', '0:0:0:0:0:0:0:1')).toBe(true);
    expect(cidrContains('::ffff:0:0/96', '::ffff:1.2.3.4')).toBe(true);
    expect(cidrContains('10.0.0.0/8', '::ffff:10.0.0.1')).toBe(false);
  });

  it('rejects a malformed range', () => {
    expect(() => cidrContains('10.0.0.1/8', '10.0.0.1')).toThrow(TypeError);
    expect(() => cidrContains('10.0.0.0/33', '10.0.0.1')).toThrow(TypeError);
    expect(() => cidrContains('10.0.0.0', '10.0.0.1')).toThrow(TypeError);
  });

  it('agrees with node:net BlockList on random addresses', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const v4 = () => Array.from({ length: 4 }, () => Math.floor(random() * 256)).join('.');
    const v6 = () =>
      Array.from({ length: 8 }, () => (random() < 0.3 ? '0' : Math.floor(random() * 0x10000).toString(16))).join(':');
    const ranges: Array<[string, number, 'ipv4' | 'ipv6']> = [
      ['10.0.0.0', 8, 'ipv4'],
      ['100.64.0.0', 10, 'ipv4'],
      ['198.18.0.0', 15, 'ipv4'],
      ['128.0.0.0', 1, 'ipv4'],
      ['2000::', 3, 'ipv6'],
      ['fe80::', 10, 'ipv6'],
      ['fc00::', 7, 'ipv6'],
      ['8000::', 1, 'ipv6'],
    ];
    for (const [base, prefix, type] of ranges) {
      const list = new BlockList();
      list.addSubnet(base, prefix, type);
      for (let i = 0; i < 500; i++) {
        let address = type === 'ipv4' ? v4() : v6();
        // Bias half of the samples into the range's neighbourhood.
        if (i % 2 === 0 && type === 'ipv4') address = `${base.split('.')[0]}.${address.split('.').slice(1).join('.')}`;
        if (i % 2 === 0 && type === 'ipv6') {
          const first = (Number.parseInt(base.split(':')[0], 16) ^ Math.floor(random() * 0x100)).toString(16);
          address = [first, ...address.split(':').slice(1)].join(':');
        }
        expect(cidrContains(`${base}/${prefix}`, address), `${address} in ${base}/${prefix}`).toBe(
          list.check(address, type),
        );
      }
    }
  });
});
