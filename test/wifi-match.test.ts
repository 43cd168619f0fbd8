// The pieces of Wi-Fi support that need no network: the private-address rule
// (authTag) against vectors computed from the formula outside node (Python's
// hmac/hashlib, HKDF written out per RFC 5869), the matching of an mDNS
// instance to pair records, the two NetworkAddress layouts, and which
// clients get which.
import t from 'tap';
import { createHmac, hkdfSync } from 'node:crypto';

import { authTag, authTagsOf, macOfInstance } from '../src/protocol/mobdev-auth-tag.js';
import { decodeTxt, instanceLabel, MAX_TXT_BYTES } from '../src/protocol/mdns.js';
import { decodeNetworkAddress, encodeNetworkAddress, layoutForClient } from '../src/protocol/network-address.js';
import { candidatesFor } from '../src/wifi/pair-match.js';
import type { PlistDict } from '../src/protocol/plist-codec.js';

t.test('authTag = base64(HMAC-SHA256(HKDF-SHA512(HostID, salt "", info "", 32), identifier)[0..8])', async (t) => {
  // Computed with Python 3: prk = HMAC-SHA512(64 zero bytes, HostID); okm =
  // HMAC-SHA512(prk, 0x01)[:32]; tag = b64(HMAC-SHA256(okm, identifier)[:8]).
  const vectors: Array<[string, string, string]> = [
    ['5F3B2A41-7C9D-4E8B-A1F0-2D6C9E8B7A15', 'A1B2C3D4E5F60718293A4B5C6D7E8F90', 'ru01vqK8CoQ='],
    ['00000000-0000-0000-0000-000000000000', 'identifier', 'AyDSy6pLk4Q='],
    ['B0D6A5E4-2F4C-4B7B-9E3D-1A2B3C4D5E6F', '', 'urqvOEPkrQs='],
  ];
  for (const [hostId, identifier, tag] of vectors) {
    t.equal(authTag(hostId, identifier), tag, `${hostId} / ${JSON.stringify(identifier)}`);
    // And node's own primitives, composed here, agree.
    const key = Buffer.from(hkdfSync('sha512', hostId, '', '', 32));
    t.equal(createHmac('sha256', key).update(identifier).digest().subarray(0, 8).toString('base64'), tag, 'node crypto agrees');
  }
});

t.test('TXT records: authTag keys, caps, first key wins', async (t) => {
  const txt = decodeTxt([Buffer.from('identifier=ABC'), Buffer.from('authTag#0=x'), Buffer.from('authTag#1=y'), Buffer.from('authtag=z'), Buffer.from('identifier=DEF')])!;
  t.equal(txt.get('identifier'), 'ABC', 'the first identifier wins');
  t.same(authTagsOf(txt).sort(), ['x', 'y', 'z'], 'authTag, authTag#0, authTag#1');
  t.equal(decodeTxt([Buffer.alloc(MAX_TXT_BYTES + 1, 0x61)]), undefined, 'over the byte cap: dropped');
  t.equal(decodeTxt(Array.from({ length: 40 }, () => Buffer.from('a=b'))), undefined, 'over the string cap: dropped');
  t.equal(decodeTxt([42]), undefined, 'not bytes: dropped');
});

t.test('instance names', async (t) => {
  const name = '18:f1:d8:df:17:9f@fe80::1af1:d8ff:fedf:179f._apple-mobdev2._tcp.local';
  t.equal(instanceLabel(name), '18:f1:d8:df:17:9f@fe80::1af1:d8ff:fedf:179f');
  t.equal(instanceLabel(`${name}.`), '18:f1:d8:df:17:9f@fe80::1af1:d8ff:fedf:179f', 'a trailing dot is fine');
  t.equal(instanceLabel('x._airplay._tcp.local'), undefined, 'another service');
  t.equal(instanceLabel(`${'a'.repeat(200)}._apple-mobdev2._tcp.local`), undefined, 'too long');
  t.equal(macOfInstance('18:F1:D8:DF:17:9F@fe80::1'), '18:f1:d8:df:17:9f');
  t.equal(macOfInstance('no-mac@fe80::1'), undefined);
});

t.test('an instance is matched by MAC, or by authTag when the MAC is private', async (t) => {
  const records: Record<string, PlistDict> = {
    'UDID-A': { HostID: 'HOST-1', WiFiMACAddress: '18:f1:d8:df:17:9f' },
    'UDID-B': { HostID: 'HOST-2', WiFiMACAddress: 'aa:bb:cc:dd:ee:ff' },
    'UDID-C': { HostID: 'HOST-1' },
  };
  const store = { list: async () => Object.keys(records), readRecord: async (u: string) => records[u]! };
  const byMac = await candidatesFor(store, '18:F1:D8:DF:17:9F@fe80::1', new Map());
  t.same(byMac.map((c) => c.udid), ['UDID-A'], 'the MAC before @ against WiFiMACAddress');
  const txt = new Map([
    ['identifier', 'ID1'],
    ['authtag#0', authTag('HOST-1', 'ID1')],
  ]);
  const byTag = await candidatesFor(store, '02:11:22:33:44:55@fe80::2', txt);
  t.same(byTag.map((c) => c.udid).sort(), ['UDID-A', 'UDID-C'], 'the tag names the host: every record of HOST-1');
  t.same(await candidatesFor(store, '02:11:22:33:44:55@fe80::2', new Map()), [], 'unmatched: nothing');
});

t.test('NetworkAddress: 128 bytes, BSD by default, Linux for libusbmuxd 2.1 and later but its own iproxy and inetcat', async (t) => {
  const v4 = encodeNetworkAddress({ address: '192.168.10.239' }, 'bsd');
  t.equal(v4.length, 128);
  t.same([...v4.subarray(0, 8)], [0x10, 0x02, 0, 0, 192, 168, 10, 239], 'sa_len 16, AF_INET 2, port 0, the address');
  const v4l = encodeNetworkAddress({ address: '192.168.10.239' }, 'linux');
  t.same([...v4l.subarray(0, 8)], [0x02, 0x00, 0, 0, 192, 168, 10, 239], 'u16 sa_family 2, the address');
  const v6 = encodeNetworkAddress({ address: 'fe80::1af1:d8ff:fedf:179f', scopeId: 39 }, 'bsd');
  t.same([v6[0], v6[1]], [0x1c, 0x1e], 'sa_len 28, AF_INET6 30 (BSD)');
  t.equal(v6.readUInt32LE(24), 39, 'sin6_scope_id is the interface');
  t.equal(v6.subarray(8, 24).toString('hex'), 'fe800000000000001af1d8fffedf179f');
  const v6l = encodeNetworkAddress({ address: 'fe80::1af1:d8ff:fedf:179f', scopeId: 39 }, 'linux');
  t.equal(v6l.readUInt16LE(0), 10, 'AF_INET6 10 (Linux)');
  for (const b of [v4, v4l, v6, v6l]) t.not(b[0], 0, 'byte 0 is never 0 (libusbmuxd drops such an entry)');
  t.same(decodeNetworkAddress(v4l), { address: '192.168.10.239' });
  t.same(decodeNetworkAddress(v4), { address: '192.168.10.239' });
  t.throws(() => encodeNetworkAddress({ address: 'not-an-ip' }, 'bsd'));

  t.equal(layoutForClient({ clientVersion: 'libusbmuxd 2.0.2', libusbmuxVersion: 3 }), 'bsd', "Debian 12's libusbmuxd");
  t.equal(layoutForClient({ clientVersion: 'libusbmuxd 2.1.0', libusbmuxVersion: 3 }), 'linux');
  t.equal(layoutForClient({ clientVersion: 'libusbmuxd 3.0.0' }), 'linux');
  t.equal(layoutForClient({ clientVersion: 'libusbmuxd 2.1.1', libusbmuxVersion: 3, progName: 'idevice_id' }), 'linux', 'libimobiledevice 1.4 tools');
  t.equal(layoutForClient({ clientVersion: 'libusbmuxd 2.1.1', libusbmuxVersion: 3, progName: 'iproxy' }), 'bsd', "libusbmuxd 2.1's iproxy still reads BSD");
  t.equal(layoutForClient({ clientVersion: 'libusbmuxd 2.1.0', progName: 'inetcat' }), 'bsd');
  t.equal(layoutForClient({ clientVersion: 'qt4i-usbmuxd', libusbmuxVersion: 3 }), 'bsd', 'pymobiledevice3');
  t.equal(layoutForClient({}), 'bsd', 'nothing said: Apple’s');
});
