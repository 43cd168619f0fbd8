// The host side of a CoreDeviceProxy tunnel against a phone that misbehaves.
// The phone here is a device-role engine whose CoreDeviceProxy port is a
// real TLS server written in the test, so it can send what no phone should:
// a wrong magic, lengths past the body or over the limit, a non-TLS stream,
// a payload length that lies, a non-IPv6 packet. The host engine runs lwIP;
// the device engine does not, so both may live in this process. Each bad
// input ends that tunnel with a clear reason, and the next tunnel works.
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';

import { MuxEngine } from '../src/native/mux-engine.js';
import { generatePairRecord } from '../src/pairing/certificates.js';
import { iphoneDescriptor } from '../src/sim/descriptor.js';
import { readyDevice, startHost, within, type HostSetup } from './helpers/harness.js';
import {
  icmpEchoRequest,
  ipv6Packet,
  NEXT_ICMPV6,
  splitPackets,
  tcpSegment,
  TCP_RST,
  TCP_SYN,
} from './helpers/ipv6-packets.js';

const PROXY_PORT = 5555;
const HOST = 'fd7a:1:2:3::2';
const PHONE = 'fd7a:1:2:3::1';
const REQUEST = JSON.stringify({ type: 'clientHandshakeRequest', mtu: 16000 });
const RESPONSE = JSON.stringify({
  type: 'serverHandshakeResponse',
  clientParameters: { address: HOST, mtu: 1500, netmask: 'ffff:ffff:ffff:ffff::' },
  serverAddress: PHONE,
  serverRSDPort: 58783,
});

function frame(body: string | Buffer, length?: number): Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const header = Buffer.alloc(10);
  header.write('CDTunnel', 0, 'latin1');
  header.writeUInt16BE(length ?? b.length, 8);
  return Buffer.concat([header, b]);
}

// The pair record's identities: the host's certificate and key, and the
// phone's key with the DeviceCertificate the host made for it.
const device = generateKeyPairSync('rsa', { modulusLength: 2048 });
const record = await generatePairRecord({
  devicePublicKeyPem: device.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  systemBuid: '00000000-0000-4000-8000-000000000001',
});
const hostIdentity = { certPem: String(record.HostCertificate), keyPem: String(record.HostPrivateKey) };
const deviceIdentity = {
  cert: String(record.DeviceCertificate),
  key: device.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
};

type Scenario = (tls: TLSSocket) => void;

/** A device-role engine on `host`'s cable whose CoreDeviceProxy port runs `scenario()` per connection. */
async function phone(test: Test, host: HostSetup, scenario: () => Scenario, plain = false): Promise<number> {
  const path = join(host.dir, 'proxy.sock');
  const server: Server = createServer((raw: Socket) => {
    raw.on('error', () => raw.destroy());
    if (plain) {
      // Not TLS at all: the ClientHello is answered with bytes that are no record.
      raw.once('data', () => raw.write(Buffer.alloc(64, 0x41)));
      return;
    }
    const tls = new TLSSocket(raw, { isServer: true, key: deviceIdentity.key, cert: deviceIdentity.cert, minVersion: 'TLSv1.2' });
    tls.on('error', () => tls.destroy());
    tls.once('secure', () => scenario()(tls));
  });
  server.listen(path);
  await once(server, 'listening');
  test.teardown(() => server.close());
  const deviceEngine = new MuxEngine();
  test.teardown(() => deviceEngine.close());
  deviceEngine.native.attachDeviceRole(host.cable, iphoneDescriptor({ serial: '00008101000A1B2C3D4E5F61' }), {
    portMap: [{ port: PROXY_PORT, path }],
  });
  return readyDevice(host.engine);
}

async function startTunnel(host: HostSetup, handle: number) {
  const conn = await host.engine.connect(handle, PROXY_PORT);
  return within(host.engine.startTunnel(conn, { ...hostIdentity, request: REQUEST }), 20_000, 'the tunnel start');
}

/** Reads the host's frame, then answers with `reply`. */
function answer(reply: Buffer, then?: (tls: TLSSocket) => void): Scenario {
  return (tls) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.length < 10 || got.length < 10 + got.readUInt16BE(8)) return;
      tls.off('data', onData);
      t.equal(got.subarray(10, 10 + got.readUInt16BE(8)).toString(), REQUEST, 'the host sent its request frame');
      tls.write(reply);
      then?.(tls);
    };
    tls.on('data', onData);
  };
}

const cases: Array<{ name: string; reply: Buffer; reason: RegExp; end?: boolean }> = [
  { name: 'a wrong magic', reply: Buffer.from('XDTunnel\u0000\u0002{}'), reason: /does not start with "CDTunnel"/ },
  { name: 'a length over the limit', reply: frame(Buffer.alloc(16), 4097), reason: /4097 is over the 4096-byte limit/ },
  { name: 'a length past the body', reply: frame('{"type":', 200), reason: /ended the CoreDeviceProxy connection|closed TLS/, end: true },
];

for (const c of cases) {
  t.test(`the host's tunnel ends on ${c.name}`, async (tt) => {
    const host = startHost(tt);
    const handle = await phone(tt, host, () => answer(c.reply, c.end ? (tls) => tls.end() : undefined));
    await tt.rejects(startTunnel(host, handle), { message: c.reason });
  });
}

t.test('a CoreDeviceProxy port that does not speak TLS ends the tunnel with a TLS error', async (tt) => {
  const host = startHost(tt);
  const handle = await phone(tt, host, () => () => undefined, true);
  await tt.rejects(startTunnel(host, handle), { message: /^TLS: TLS handshake failed/ });
});

t.test('packets: a lying payload length and cut-short extension headers are dropped, echo and RST are answered, a non-IPv6 packet ends the tunnel', async (tt) => {
  const host = startHost(tt);
  let device: TLSSocket | undefined;
  const handle = await phone(tt, host, () => answer(frame(RESPONSE), (tls) => (device = tls)));
  const { tunnel, body } = await startTunnel(host, handle);
  tt.same(JSON.parse(body), JSON.parse(RESPONSE), 'the device frame reaches JS intact');
  host.engine.configureTunnel(tunnel, { localAddress: HOST, peerAddress: PHONE, mtu: 1500 });
  const phoneSide = device!;
  let stream: Buffer = Buffer.alloc(0);
  const replies: ReturnType<typeof splitPackets>['packets'] = [];
  phoneSide.on('data', (d: Buffer) => {
    const { packets, rest } = splitPackets(Buffer.concat([stream, d]));
    stream = rest;
    replies.push(...packets);
  });
  const waitReply = async (what: string, match: (p: (typeof replies)[number]) => boolean) => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const i = replies.findIndex(match);
      if (i >= 0) return replies.splice(i, 1)[0];
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no ${what} from the host's stack`);
  };
  // A header that claims 8 bytes of ICMPv6 whose checksum is wrong: the
  // stack drops it and the stream stays in step.
  phoneSide.write(ipv6Packet(PHONE, HOST, NEXT_ICMPV6, Buffer.from([128, 0, 0xde, 0xad, 0, 1, 0, 1])));
  // Extension headers cut short: a Hop-by-Hop header with no bytes at all,
  // and Destination Options whose last option's length byte lies outside
  // the header. lwIP 2.1.3 would read past the packet for both (found by
  // the lwip_input fuzzer); the tunnel drops them first.
  phoneSide.write(ipv6Packet(PHONE, HOST, 0, Buffer.alloc(0)));
  phoneSide.write(ipv6Packet(PHONE, HOST, 60, Buffer.from([59, 0, 1, 3, 0, 0, 0, 0x05])));
  // A SYN whose options end in a kind byte with no length: lwIP's
  // tcp_parseopt would read one byte past the packet (the fuzzer again).
  phoneSide.write(tcpSegment(PHONE, HOST, 50001, 4444, 1, TCP_SYN, Buffer.from([1, 1, 1, 3])));
  phoneSide.write(icmpEchoRequest(PHONE, HOST, 7, 1, Buffer.from('still in step')));
  const echo = await waitReply('echo reply', (p) => p.icmpType === 129);
  tt.ok(echo.payload.subarray(8).equals(Buffer.from('still in step')), 'the echo reply carries our data');
  phoneSide.write(tcpSegment(PHONE, HOST, 50000, 4444, 12345, TCP_SYN));
  const rst = await waitReply('RST', (p) => p.tcpFlags !== undefined && (p.tcpFlags & TCP_RST) !== 0);
  tt.same(rst.tcpPorts, [4444, 50000], 'a SYN to a closed port is answered with a RST from that port');
  tt.notOk(
    replies.some((p) => p.tcpPorts?.[1] === 50001),
    'the SYN whose options were cut short got no answer: it never reached lwIP',
  );
  const closed = once(host.engine, 'tunnelClosed');
  phoneSide.write(Buffer.alloc(40, 0x45)); // version 4
  const [event] = (await within(closed, 10_000, 'tunnelClosed')) as [{ tunnel: number; reason: string; code: string }];
  tt.equal(event.tunnel, tunnel);
  tt.match(event.reason, /not an IPv6 packet \(version 4\)/);
  // The host is fine: the next tunnel on the same phone comes up.
  const again = await startTunnel(host, handle);
  tt.ok(again.tunnel > tunnel, 'a new tunnel starts after the bad one');
});

t.test('a second engine in the process refuses to start a tunnel rather than share lwIP', async (tt) => {
  const first = startHost(tt);
  const firstHandle = await phone(tt, first, () => answer(frame(RESPONSE)));
  const up = await startTunnel(first, firstHandle);
  first.engine.configureTunnel(up.tunnel, { localAddress: HOST, peerAddress: PHONE, mtu: 1500 });
  const second = startHost(tt);
  const secondHandle = await phone(tt, second, () => answer(frame(RESPONSE)));
  await tt.rejects(startTunnel(second, secondHandle), { message: /one stack per process/ });
});
