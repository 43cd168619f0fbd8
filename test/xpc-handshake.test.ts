// The device role against the three client orderings (reference §3.2.1),
// each driven frame by frame by a client that follows it exactly; the
// ordering bug of an early peer-info; request/reply on streams 1 and 3; and
// a malformed client getting GOAWAY while healthy ones never see RST_STREAM
// or GOAWAY.
import t, { type Test } from 'tap';
import { createServer, type AddressInfo, type Server } from 'node:net';

import { DeviceConnection } from '../src/xpc/device-connection.js';
import { deviceHandshakeRules } from '../src/xpc/device-rules.js';
import { dataFrame, headersFrame, pingFrame, settingsAckFrame, settingsFrame, windowUpdateFrame } from '../src/xpc/http2-frames.js';
import { HostConnection, HANDSHAKE_ORDERINGS } from '../src/xpc/host-connection.js';
import { encodeMessage } from '../src/xpc/message.js';
import { buildPeerInfo, parsePeerInfo } from '../src/xpc/rsd.js';
import { dict, int64, Uuid } from '../src/xpc/values.js';
import { FrameProbe } from './helpers/xpc-probe.js';

const A = { flags: 0x1, messageId: 0n, body: new Map() };
const B = { flags: 0x00400001, messageId: 0n };
const C = { flags: 0x201, messageId: 0n };
const PEER_INFO = 'data/1:0x101 Handshake';

async function device(t: Test, onRequest?: ConstructorParameters<typeof DeviceConnection>[1]['onRequest']) {
  const errors: Error[] = [];
  const server: Server = createServer((socket) => {
    const peerInfo = buildPeerInfo({
      uuid: Uuid.random(),
      properties: dict({ UniqueDeviceID: '00008120-0000000000000001' }),
      services: [{ name: 'com.example.echo', port: 1234, properties: dict({ UsesRemoteXPC: true }) }],
    });
    new DeviceConnection(socket, { rules: deviceHandshakeRules(peerInfo), onRequest, onError: (e) => errors.push(e) });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, errors };
}

async function probe(t: Test, port: number) {
  const p = await FrameProbe.connect(port);
  t.teardown(() => p.close());
  return p;
}

const clientSettings = (win: number) => settingsFrame([[3, 100], [4, win]]);

t.test('pymobiledevice3 / appium: A, HEADERS#3, C, B; peer-info follows B', async (t) => {
  const { port } = await device(t);
  const p = await probe(t, port);
  t.same(await p.step(2), ['settings', 'windowUpdate/0'], 'SETTINGS first, then WINDOW_UPDATE, on connect');
  p.preface();
  p.send(clientSettings(16777216));
  t.same(await p.step(1), ['settingsAck']);
  p.send(windowUpdateFrame(0, 16711681));
  t.same(await p.step(0), [], 'WINDOW_UPDATE: nothing');
  p.send(headersFrame(1));
  t.same(await p.step(1), ['headers/1']);
  p.sendMessage(1, A);
  t.same(await p.step(1), ['data/1:0x1'], 'A: an empty dictionary on 1');
  p.send(headersFrame(3));
  t.same(await p.step(1), ['headers/3']);
  p.sendMessage(1, C);
  t.same(await p.step(1), ['data/1:0x201'], 'C: header-only 0x201 on 1, no peer-info yet');
  p.sendMessage(3, B);
  t.same(await p.step(2), ['data/3:0x400001', PEER_INFO], 'B: header-only on 3, then peer-info on 1');
  p.send(settingsAckFrame());
  t.same(await p.step(0), [], 'the client ACK: nothing');
  t.equal(p.frames.filter((f) => f.type === 3 || f.type === 7).length, 0, 'no RST_STREAM, no GOAWAY');
  const info = parsePeerInfo(p.messages.at(-1)!.message.body!);
  t.equal(info.services[0]!.port, 1234, 'Port parsed from its string');
  t.notOk(Uuid.parse(info.uuid).isZero(), 'a non-zero UUID');
});

t.test('idevice: A, HEADERS#3, B, C; peer-info follows C', async (t) => {
  const { port } = await device(t);
  const p = await probe(t, port);
  t.same(await p.step(2), ['settings', 'windowUpdate/0']);
  p.preface();
  p.send(clientSettings(1048576));
  t.same(await p.step(1), ['settingsAck']);
  p.send(windowUpdateFrame(0, 983041));
  t.same(await p.step(0), []);
  p.send(headersFrame(1));
  t.same(await p.step(1), ['headers/1']);
  p.sendMessage(1, { ...A, messageId: 1n });
  t.same(await p.step(1), ['data/1:0x1'], 'message id 1 is accepted as well');
  p.send(headersFrame(3));
  t.same(await p.step(1), ['headers/3']);
  p.sendMessage(3, { ...B, messageId: 1n });
  t.same(await p.step(1), ['data/3:0x400001'], 'B alone: no peer-info yet');
  p.sendMessage(1, { ...C, messageId: 1n });
  t.same(await p.step(2), ['data/1:0x201', PEER_INFO], 'C: its answer, then peer-info');
  t.equal(p.frames.filter((f) => f.type === 3 || f.type === 7).length, 0);
});

t.test('go-ios: waits for SETTINGS, then A, B, C one reply at a time', async (t) => {
  const { port } = await device(t);
  const p = await probe(t, port);
  // go-ios reads one frame and expects SETTINGS before it sends anything.
  const first = await p.step(1, 0);
  t.equal(first[0], 'settings', 'the first frame is SETTINGS');
  await p.step(0);
  p.preface();
  p.send(clientSettings(1048576), windowUpdateFrame(0, 983041));
  t.same(await p.step(1), ['settingsAck']);
  p.send(headersFrame(1));
  p.sendMessage(1, A);
  t.same(await p.step(2), ['headers/1', 'data/1:0x1'], 'one whole message on 1');
  p.send(headersFrame(3));
  p.sendMessage(3, B);
  t.same(await p.step(2), ['headers/3', 'data/3:0x400001'], 'one whole message on 3');
  p.sendMessage(1, C);
  t.same(await p.step(2), ['data/1:0x201', PEER_INFO], "C's answer, and peer-info as the very next stream-1 message");
});

t.test('an older pymobiledevice3 (A, C, then HEADERS#3 and B) is served too', async (t) => {
  const { port } = await device(t);
  const p = await probe(t, port);
  p.preface();
  p.send(clientSettings(1048576), windowUpdateFrame(0, 983041), headersFrame(1));
  p.sendMessage(1, A);
  p.sendMessage(1, C);
  t.same(await p.step(6), ['settings', 'windowUpdate/0', 'settingsAck', 'headers/1', 'data/1:0x1', 'data/1:0x201']);
  p.send(headersFrame(3));
  p.sendMessage(3, B);
  t.same(await p.step(3), ['headers/3', 'data/3:0x400001', PEER_INFO]);
});

t.test("appium's SETTINGS ACK before it has read the device's SETTINGS is ignored", async (t) => {
  const { port } = await device(t);
  const p = await probe(t, port);
  p.preface();
  p.send(settingsAckFrame(), clientSettings(16777216), windowUpdateFrame(0, 16711681), headersFrame(1));
  p.sendMessage(1, A);
  p.send(headersFrame(3));
  p.sendMessage(1, C);
  p.sendMessage(3, B);
  t.same(await p.step(9), [
    'settings',
    'windowUpdate/0',
    'settingsAck',
    'headers/1',
    'data/1:0x1',
    'headers/3',
    'data/1:0x201',
    'data/3:0x400001',
    PEER_INFO,
  ]);
});

t.test('no peer-info on ROOT_CHANNEL while HEADERS#3 and B are held back', async (t) => {
  const { port } = await device(t);
  const p = await probe(t, port);
  await p.step(2);
  p.preface();
  p.send(clientSettings(16777216), windowUpdateFrame(0, 16711681), headersFrame(1));
  p.sendMessage(1, A);
  p.sendMessage(1, C);
  const got = await p.step(4, 300);
  t.same(got, ['settingsAck', 'headers/1', 'data/1:0x1', 'data/1:0x201']);
  t.notOk(got.includes(PEER_INFO), 'the big reply is not sent');
  t.notOk(p.frames.some((f) => f.payload.length > 100), 'no large frame at all');
  p.send(headersFrame(3));
  t.same(await p.step(1), ['headers/3'], 'stream 3 opened: still nothing on 1');
  p.sendMessage(3, B);
  t.same(await p.step(2), ['data/3:0x400001', PEER_INFO], 'B on stream 3 releases it');
});

t.test('B before HEADERS#3 is a protocol error: GOAWAY, and the connection ends', async (t) => {
  const { port, errors } = await device(t);
  const p = await probe(t, port);
  p.preface();
  p.send(clientSettings(16777216), headersFrame(1));
  p.sendMessage(3, B);
  const got = await p.step(5);
  t.same(got, ['settings', 'windowUpdate/0', 'settingsAck', 'headers/1', 'goaway']);
  t.match(errors[0], { code: 'EH2PROTOCOL' });
});

t.test('a bad preface or a malformed XPC message ends the connection with GOAWAY', async (t) => {
  const { port, errors } = await device(t);
  const p = await probe(t, port);
  p.socket.write('GET / HTTP/1.1\r\n\r\n');
  t.same((await p.step(3)).slice(-1), ['goaway']);
  const q = await probe(t, port);
  q.preface();
  q.send(headersFrame(1), dataFrame(1, Buffer.from(encodeMessage(A)).fill(0xff, 8, 16)));
  t.same((await q.step(4)).slice(-1), ['goaway'], 'a 2^64 body length');
  t.same(
    errors.map((e) => (e as Error & { code: string }).code),
    ['EH2PREFACE', 'EXPCLENGTH'],
  );
});

t.test('our host role in each ordering, then requests: stream 1 out, stream 3 back, ids follow the replies', async (t) => {
  const seen: bigint[] = [];
  const { port } = await device(t, (m) => {
    seen.push(m.messageId);
    return dict({ echo: m.body!.get('n')!, id: int64(m.messageId) });
  });
  for (const ordering of HANDSHAKE_ORDERINGS) {
    const host = await HostConnection.open('127.0.0.1', port);
    t.teardown(() => host.close());
    await host.handshake(ordering);
    const info = parsePeerInfo((await host.nextRootMessage()).body!);
    t.equal(info.udid, '00008120-0000000000000001', `${ordering}: peer-info`);
    const first = await host.request(dict({ n: int64(5) }));
    t.equal(first.flags, 0x00020101, 'reply flags: ALWAYS_SET | DATA_PRESENT | REPLY');
    t.strictSame(first.body!.get('echo'), int64(5));
    const second = await host.request(dict({ n: int64(6) }));
    t.equal(second.messageId, first.messageId + 1n, 'the next id is the last reply id + 1');
  }
  t.same(seen, [1n, 2n, 1n, 2n, 1n, 2n]);
});

t.test('messages bigger than a DATA frame reassemble both ways', async (t) => {
  const { port } = await device(t, (m) => dict({ blob: m.body!.get('blob')!, size: int64((m.body!.get('blob') as Buffer).length) }));
  const host = await HostConnection.open('127.0.0.1', port);
  t.teardown(() => host.close());
  await host.handshake('idevice');
  await host.nextRootMessage();
  const blob = Buffer.alloc(2_500_000, 7);
  const reply = await host.request(dict({ blob }));
  t.strictSame(reply.body!.get('size'), int64(2_500_000));
  const refills = host.received.filter((f) => f.type === 8).map((f) => f.stream);
  t.same(refills, [0, 0, 1, 0, 1], 'the device tops up the connection and stream 1 every MiB (after its initial WINDOW_UPDATE)');
  t.same(reply.body!.get('blob'), blob);
  const data = host.received.filter((f) => f.type === 0 && f.stream === 3);
  t.ok(data.length >= 7, `the reply came in ${data.length} DATA frames`);
  t.ok(data.every((f) => f.payload.length <= 16384), 'at most 16384 bytes per DATA frame');
});

t.test('PING is answered; too many streams or too much unfinished data ends the connection', async (t) => {
  const { port, errors } = await device(t);
  const p = await probe(t, port);
  p.preface();
  p.send(pingFrame(Buffer.from('12345678')));
  t.same((await p.step(3)).slice(-1), ['type6/0'], 'a PING ACK');
  t.same(p.frames.at(-1)!.payload, Buffer.from('12345678'));
  for (let s = 1; s <= 203; s += 2) p.send(headersFrame(s));
  t.equal((await p.step(51)).at(-1), 'goaway', 'the 101st stream is refused');
  const q = await probe(t, port);
  q.preface();
  q.send(headersFrame(1), headersFrame(3));
  // Two messages of 60 MiB each, both unfinished: 80 MiB buffered in all.
  const head = encodeMessage({ flags: 0x101, messageId: 1n }).fill(0, 8, 16);
  head.writeBigUInt64LE(60n * 1024n * 1024n, 8);
  q.send(dataFrame(1, head), dataFrame(3, head));
  const chunk = Buffer.alloc(10 * 1024 * 1024);
  for (let i = 0; i < 4; i++) q.send(dataFrame(1, chunk), dataFrame(3, chunk));
  t.ok(await q.until('goaway'), 'over 64 MiB of unfinished messages: GOAWAY');
  t.ok(q.closed, 'and the connection is closed');
  t.same(
    errors.map((e) => (e as Error & { code: string }).code),
    ['EH2PROTOCOL', 'EXPCLENGTH'],
  );
});

t.test('the host role finds the device SETTINGS that came before its handshake started', async (t) => {
  const { port } = await device(t);
  for (const ordering of ['pymobiledevice3', 'go-ios'] as const) {
    const host = await HostConnection.open('127.0.0.1', port);
    t.teardown(() => host.close());
    await new Promise((r) => setTimeout(r, 100));
    t.equal(host.received[0]?.type, 4, 'SETTINGS is already in');
    await host.handshake(ordering);
    t.equal(parsePeerInfo((await host.nextRootMessage()).body!).udid, '00008120-0000000000000001', ordering);
  }
});
