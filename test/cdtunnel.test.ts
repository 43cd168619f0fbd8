// The CDTunnel handshake frames and JSON (src/protocol/cdtunnel.ts), byte for
// byte against the reference's vectors (tunnel-wifi-remote §1.2,
// lockdown-xpc §3.5), and every bad input a device or a host could send:
// a wrong magic, a length past the body or over the limit, JSON that does not
// parse, missing or mistyped fields, addresses off the /64. Also the IPv6
// text parser behind them and go-ios's preamble.
import t from 'tap';

import {
  buildClientHandshakeRequest,
  buildServerHandshakeResponse,
  CdTunnelError,
  decodeCdTunnelFrame,
  encodeCdTunnelFrame,
  HOST_REQUESTED_MTU,
  MAX_CDTUNNEL_BODY,
  parseClientHandshakeRequest,
  parseServerHandshakeResponse,
  readCdTunnelFrame,
} from '../src/protocol/cdtunnel.js';
import { formatIpv6, netmaskPrefixLength, parseIpv6 } from '../src/protocol/ipv6.js';
import { encodeTunnelPreamble } from '../src/protocol/tunnel-preamble.js';

const hex = (s: string) => Buffer.from(s.replace(/[^0-9a-fA-F]/g, ''), 'hex');

// §1.2: go-ios's request with mtu 1280, keys sorted by json.Marshal (44-byte body).
const REQUEST_1280_JSON = '{"mtu":1280,"type":"clientHandshakeRequest"}';
const REQUEST_1280 = Buffer.concat([hex('43 44 54 75 6e 6e 65 6c 00 2c'), Buffer.from(REQUEST_1280_JSON)]);
// §1.2 / §3.5: the response captured by pymobiledevice3 (misc/RemoteXPC.md).
const RESPONSE = {
  clientParameters: { address: 'fd58:8c92:8961::2', mtu: 1280, netmask: 'ffff:ffff:ffff:ffff::' },
  serverAddress: 'fd58:8c92:8961::1',
  serverRSDPort: 56307,
  type: 'serverHandshakeResponse',
};

t.test('the request frame is the reference bytes, both ways', async (t) => {
  t.equal(buildClientHandshakeRequest(1280), REQUEST_1280_JSON, 'the JSON, keys sorted');
  t.same(encodeCdTunnelFrame(buildClientHandshakeRequest(1280)), REQUEST_1280, 'magic, u16 BE 0x002c, body');
  t.equal(decodeCdTunnelFrame(REQUEST_1280), REQUEST_1280_JSON);
  t.same(parseClientHandshakeRequest(REQUEST_1280_JSON), { mtu: 1280 });
  t.equal(HOST_REQUESTED_MTU, 16000, 'the host asks 16000, as pymobiledevice3 and idevice do');
  t.equal(buildClientHandshakeRequest(), '{"mtu":16000,"type":"clientHandshakeRequest"}');
  // pymobiledevice3's json.dumps spacing and key order parse the same.
  t.same(parseClientHandshakeRequest('{"type": "clientHandshakeRequest", "mtu": 16000}'), { mtu: 16000 });
});

t.test('the response: the captured example parses, and what we build parses back', async (t) => {
  const text = JSON.stringify(RESPONSE);
  t.same(parseServerHandshakeResponse(text), {
    clientAddress: 'fd58:8c92:8961::2',
    mtu: 1280,
    netmask: 'ffff:ffff:ffff:ffff::',
    serverAddress: 'fd58:8c92:8961::1',
    serverRSDPort: 56307,
  });
  const built = buildServerHandshakeResponse(parseServerHandshakeResponse(text));
  t.equal(built, text, 'built with the captured key order, byte for byte');
  const frame = encodeCdTunnelFrame(built);
  t.equal(frame.readUInt16BE(8), Buffer.byteLength(text), 'u16 big-endian length');
  t.ok(frame.length < 256 + 10, "under 256 body bytes, so go-ios's one-byte length reading still works");
});

t.test('frames: a stream read in pieces, and the packets after the frame', async (t) => {
  const packets = hex('60 00 00 00 00 00 3a 40');
  const stream = Buffer.concat([REQUEST_1280, packets]);
  for (let cut = 0; cut < REQUEST_1280.length; cut++) {
    t.equal(readCdTunnelFrame(stream.subarray(0, cut)), undefined, `${cut} bytes: more needed`);
  }
  const frame = readCdTunnelFrame(stream)!;
  t.equal(frame.body, REQUEST_1280_JSON);
  t.same(stream.subarray(frame.frameLength), packets, 'what follows the frame is left for the packets');
});

t.test('frames: bad bytes fail with a reason, as early as they show', async (t) => {
  const bad = (bytes: Buffer, re: RegExp, what: string) =>
    t.throws(() => decodeCdTunnelFrame(bytes), { name: 'CdTunnelError', message: re }, what);
  bad(Buffer.concat([Buffer.from('CDTunnex'), REQUEST_1280.subarray(8)]), /wrong magic/, 'wrong magic');
  t.throws(() => readCdTunnelFrame(Buffer.from('CX')), /wrong magic \(4358, not 4344\)/, 'a wrong magic fails on its second byte');
  bad(Buffer.concat([hex('43 44 54 75 6e 6e 65 6c 00 40'), Buffer.from(REQUEST_1280_JSON)]), /length 64 runs past the 44 bytes of body/, 'length past the body');
  bad(REQUEST_1280.subarray(0, 7), /ends inside its 10-byte header/, 'a cut header');
  bad(Buffer.concat([REQUEST_1280, Buffer.from('x')]), /1 bytes after/, 'a byte after the only frame');
  t.throws(() => readCdTunnelFrame(hex('43 44 54 75 6e 6e 65 6c 10 01')), /length 4097 is over the 4096-byte limit/, 'over the limit, on the header alone');
  t.throws(() => readCdTunnelFrame(hex('43 44 54 75 6e 6e 65 6c ff ff')), /65535 is over/, 'the u16 maximum');
  bad(Buffer.concat([hex('43 44 54 75 6e 6e 65 6c 00 02'), hex('c3 28')]), /not UTF-8/, 'a body that is not UTF-8');
  t.throws(() => encodeCdTunnelFrame('x'.repeat(MAX_CDTUNNEL_BODY + 1)), /4097 bytes is over the 4096-byte limit/, 'nothing over the limit is sent');
  t.equal(encodeCdTunnelFrame('x'.repeat(MAX_CDTUNNEL_BODY)).length, 10 + MAX_CDTUNNEL_BODY, 'exactly the limit is fine');
});

t.test('the request: every bad field is named', async (t) => {
  const bad = (text: string, re: RegExp) => t.throws(() => parseClientHandshakeRequest(text), { code: 'ECDTUNNEL', message: re }, text.slice(0, 60));
  bad('{"mtu":1280,"type":"clientHandshakeRequest"', /request is not JSON/);
  bad('[1280]', /not a JSON object/);
  bad('null', /not a JSON object/);
  bad('{"mtu":1280}', /request lacks type/);
  bad('{"type":"clientHandshakeRequest"}', /request lacks mtu/);
  bad('{"mtu":1280,"type":"serverHandshakeResponse"}', /type is "serverHandshakeResponse", not "clientHandshakeRequest"/);
  bad('{"mtu":"1280","type":"clientHandshakeRequest"}', /mtu is not an integer in 1280..65535 \(got "1280"\)/);
  bad('{"mtu":1279,"type":"clientHandshakeRequest"}', /mtu is not an integer in 1280..65535 \(got 1279\)/);
  bad('{"mtu":65536,"type":"clientHandshakeRequest"}', /got 65536/);
  bad('{"mtu":1500.5,"type":"clientHandshakeRequest"}', /got 1500.5/);
  bad(' '.repeat(MAX_CDTUNNEL_BODY + 1), /over the 4096-byte limit/);
  t.throws(() => buildClientHandshakeRequest(1000), RangeError, 'we never ask for less than IPv6 needs');
});

t.test('the response: every bad field is named', async (t) => {
  const variant = (edit: (r: Record<string, any>) => void): string => {
    const r = JSON.parse(JSON.stringify(RESPONSE)) as Record<string, any>;
    edit(r);
    return JSON.stringify(r);
  };
  const bad = (text: string, re: RegExp, what: string) =>
    t.throws(() => parseServerHandshakeResponse(text), { name: 'CdTunnelError', message: re }, what);
  bad('{"type":"serverHandshakeResponse",', /response is not JSON/, 'truncated JSON');
  bad('"serverHandshakeResponse"', /not a JSON object/, 'a string');
  bad(variant((r) => delete r.serverRSDPort), /CDTunnel response lacks serverRSDPort/, 'no serverRSDPort');
  bad(variant((r) => delete r.serverAddress), /response lacks serverAddress/, 'no serverAddress');
  bad(variant((r) => delete r.clientParameters), /response lacks clientParameters/, 'no clientParameters');
  bad(variant((r) => delete r.clientParameters.address), /response lacks address/, 'no client address');
  bad(variant((r) => delete r.clientParameters.mtu), /response lacks mtu/, 'no mtu');
  bad(variant((r) => delete r.clientParameters.netmask), /response lacks netmask/, 'no netmask');
  bad(variant((r) => delete r.type), /response lacks type/, 'no type');
  bad(variant((r) => (r.type = 'clientHandshakeRequest')), /type is "clientHandshakeRequest"/, 'the wrong type');
  bad(variant((r) => (r.clientParameters = 'fd00::2')), /clientParameters is not an object/, 'clientParameters a string');
  bad(variant((r) => (r.clientParameters = [])), /clientParameters is not an object/, 'clientParameters an array');
  bad(variant((r) => (r.serverRSDPort = '56307')), /serverRSDPort is not an integer in 1..65535 \(got "56307"\)/, 'port as a string');
  bad(variant((r) => (r.serverRSDPort = 0)), /serverRSDPort is not an integer in 1..65535 \(got 0\)/, 'port 0');
  bad(variant((r) => (r.serverRSDPort = 65536)), /got 65536/, 'port 65536');
  bad(variant((r) => (r.clientParameters.mtu = 1200)), /clientParameters.mtu is not an integer in 1280..65535 \(got 1200\)/, 'mtu below IPv6');
  bad(variant((r) => (r.clientParameters.mtu = null)), /clientParameters.mtu .*got null/, 'mtu null');
  bad(variant((r) => (r.serverAddress = '10.0.0.1')), /serverAddress is not an IPv6 address \(got "10.0.0.1"\)/, 'IPv4');
  bad(variant((r) => (r.serverAddress = 'fe80::1%eth0')), /serverAddress is not an IPv6 address/, 'a zone id');
  bad(variant((r) => (r.clientParameters.address = 7)), /clientParameters.address is not an IPv6 address \(got 7\)/, 'a number');
  bad(variant((r) => (r.clientParameters.netmask = 'ffff:0:ffff::')), /netmask "ffff:0:ffff::" is not a contiguous mask/, 'a mask with holes');
  bad(variant((r) => (r.clientParameters.address = 'fd58:8c92:8962::2')), /are not on one \/64/, 'addresses on two /64s');
  bad(variant((r) => (r.clientParameters.address = r.serverAddress)), /are the same address/, 'one address for both');
  bad(variant((r) => (r.serverAddress = 'ff02::1')), /serverAddress is not a unicast address/, 'multicast');
  bad(variant((r) => (r.clientParameters.address = '::')), /clientParameters.address is not a unicast address/, 'unspecified');
  t.ok(parseServerHandshakeResponse(variant((r) => (r.extra = { anything: true }))), 'fields we do not know are ignored');
});

t.test('IPv6 text', async (t) => {
  t.same(parseIpv6('fd58:8c92:8961::2'), hex('fd58 8c92 8961 0000 0000 0000 0000 0002'));
  t.same(parseIpv6('::'), Buffer.alloc(16));
  t.same(parseIpv6('::ffff:192.0.2.1'), hex('0000 0000 0000 0000 0000 ffff c000 0201'));
  t.same(parseIpv6('1:2:3:4:5:6:7:8'), hex('0001 0002 0003 0004 0005 0006 0007 0008'));
  t.same(parseIpv6('1:2:3:4:5:6:7::'), hex('0001 0002 0003 0004 0005 0006 0007 0000'));
  for (const bad of ['', ':', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1::', '1:', 'g::1', '12345::', '1.2.3.4', '1.2.3.4::', '::1.2.3', 'fe80::1%eth0', '::256.0.0.1']) {
    t.equal(parseIpv6(bad), undefined, `'${bad}' is not IPv6`);
  }
  t.equal(formatIpv6(parseIpv6('FD58:8C92:8961:0:0:0:0:2')!), 'fd58:8c92:8961::2', 'RFC 5952 text');
  t.equal(formatIpv6(parseIpv6('1:0:0:2:0:0:0:3')!), '1:0:0:2::3', 'the longest zero run');
  t.equal(formatIpv6(parseIpv6('1:0:2:3:4:5:6:7')!), '1:0:2:3:4:5:6:7', 'one zero group stays');
  t.equal(netmaskPrefixLength(parseIpv6('ffff:ffff:ffff:ffff::')!), 64);
  t.equal(netmaskPrefixLength(parseIpv6('ffff:ffff:ffff:fffe::')!), 63);
});

t.test("go-ios's preamble: 16 address bytes, then the port u32 little-endian", async (t) => {
  t.same(encodeTunnelPreamble('fd58:8c92:8961::1', 56307), hex('fd58 8c92 8961 0000 0000 0000 0000 0001 f3 db 00 00'));
  t.throws(() => encodeTunnelPreamble('127.0.0.1', 1), RangeError);
  t.throws(() => encodeTunnelPreamble('::1', 0), RangeError);
});

t.test('errors are CdTunnelError', async (t) => {
  try {
    parseServerHandshakeResponse('{}');
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof CdTunnelError);
    t.equal((err as CdTunnelError).message, 'CDTunnel response lacks type');
  }
});
