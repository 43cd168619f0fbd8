// Replay mode: the shipped synthetic session (9 device frames, payloads 12 4
// 0 0 44 0 24 24 14124, 14,313 bytes) served event-driven to a client that
// plays the recording's host frames one by one. The device bytes are the
// recording's byte for byte except the peer-info UUID, which is fresh and
// non-zero in every session.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

import { packageRoot } from '../src/native/addon.js';
import { DeviceConnection } from '../src/xpc/device-connection.js';
import { frameBytes, PREFACE } from '../src/xpc/http2-frames.js';
import { topLevelOffsets } from '../src/xpc/message.js';
import { formatSessionFixture, loadSessionFixture, parseSessionFixture, planReplay, replayRules, type RecordedSession } from '../src/xpc/replay.js';
import { parsePeerInfo } from '../src/xpc/rsd.js';
import { Uuid } from '../src/xpc/values.js';
import { buildFixtureSession, FIXTURE_UUID } from './helpers/rsd-fixture.js';
import { FrameProbe } from './helpers/xpc-probe.js';

const FIXTURE = join(packageRoot, 'test', 'fixtures', 'rsd-session.json');
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

t.test('the fixture is what the generator builds, in the recorded shape, from the reference vectors', async (t) => {
  t.equal(readFileSync(FIXTURE, 'utf8'), formatSessionFixture(buildFixtureSession()), 'regenerates identically');
  const session = loadSessionFixture(FIXTURE);
  const device = session.frames.filter((f) => f.from === 'device');
  t.same(device.map((f) => f.payload.length), [12, 4, 0, 0, 44, 0, 24, 24, 14124]);
  const bytes = Buffer.concat(device.map(frameBytes));
  t.equal(bytes.length, 14313, '14,313 bytes in 9 frames');
  t.same(frameBytes(device[0]!), hex('00000c040000000000000300000064000400100000'), 'SETTINGS (1 MiB)');
  t.same(frameBytes(device[1]!), hex('000004080000000000000f0001'), 'WINDOW_UPDATE 983041');
  t.same(frameBytes(device[2]!), hex('000000040100000000'), 'SETTINGS ACK');
  t.same(frameBytes(device[3]!), hex('000000010400000001'), 'HEADERS on 1');
  t.same(device[4]!.payload, hex('920bb029 01000000 1400000000000000 0000000000000000 42371342 05000000 00f00000 04000000 00000000'));
  t.same(frameBytes(device[5]!), hex('000000010400000003'), 'HEADERS on 3');
  t.same(device[6]!.payload, hex('920bb0290102000000000000000000000000000000000000'), 'the 0x201 answer');
  t.same(device[7]!.payload, hex('920bb0290100400000000000000000000000000000000000'), 'the INIT_HANDSHAKE answer');
  const host = session.frames.filter((f) => f.from === 'host');
  t.same(frameBytes(host[0]!), hex('00000c040000000000000300000064000401000000'), 'client SETTINGS (16 MiB)');
  t.same(frameBytes(host[1]!), hex('00000408000000000000ff0001'), 'client WINDOW_UPDATE 16711681');
});

t.test('the plan: each device run waits for the host event before it in the recording', async (t) => {
  const plan = planReplay(loadSessionFixture(FIXTURE));
  t.same(
    plan.steps.map((s) => [s.when.on, s.when.stream, s.when.flags, s.when.occurrence, s.frames.length]),
    [
      ['connect', undefined, undefined, undefined, 2],
      ['settings', undefined, undefined, 1, 1],
      ['headers', 1, 4, 1, 1],
      ['message', 1, 0x1, 1, 1],
      ['headers', 3, 4, 1, 1],
      ['message', 1, 0x201, 1, 1],
      ['message', 3, 0x400001, 1, 2],
    ],
    'the peer-info goes with the DATA on stream 3, not the first DATA on stream 1',
  );
  t.equal(plan.uuids.size, 1, 'one UUID to patch');
});

async function replayServer(t: Test, session: RecordedSession) {
  const plan = planReplay(session);
  const uuids: Uuid[] = [];
  const server = createServer((socket) => {
    const { rules, uuid } = replayRules(session, plan);
    uuids.push(uuid);
    new DeviceConnection(socket, { rules, housekeeping: false });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, uuids };
}

/** Plays the host side frame by frame; returns every byte the device sent. */
async function playHost(t: Test, port: number, session: RecordedSession): Promise<{ bytes: Buffer; probe: FrameProbe }> {
  const probe = await FrameProbe.connect(port);
  t.teardown(() => probe.close());
  const expected = session.frames.filter((f) => f.from === 'device').length;
  await probe.step(0, 30);
  probe.preface();
  for (const f of session.frames) {
    if (f.from === 'host') {
      probe.send(f);
      await probe.step(0, 30);
    }
  }
  await probe.step(expected, 50);
  return { bytes: probe.bytes, probe };
}

t.test('replay is byte-exact with a fresh UUID per session', async (t) => {
  const session = loadSessionFixture(FIXTURE);
  const recorded = Buffer.concat(session.frames.filter((f) => f.from === 'device').map(frameBytes));
  const { port, uuids } = await replayServer(t, session);
  const one = await playHost(t, port, session);
  const two = await playHost(t, port, session);
  t.equal(one.bytes.length, 14313);
  t.equal(two.bytes.length, 14313);

  // Where the UUID sits in the byte stream: in the last frame's message.
  const peerInfoAt = recorded.length - 14124;
  const uuidAt = peerInfoAt + topLevelOffsets(recorded.subarray(peerInfoAt)).get('UUID')! + 4;
  t.same(recorded.subarray(uuidAt, uuidAt + 16), FIXTURE_UUID.bytes, 'the recording holds its UUID there');
  const masked = (b: Buffer) => Buffer.concat([b.subarray(0, uuidAt), Buffer.alloc(16), b.subarray(uuidAt + 16)]);
  t.ok(masked(one.bytes).equals(masked(recorded)), 'session 1: every other byte is the recording');
  t.ok(masked(two.bytes).equals(masked(recorded)), 'session 2: every other byte is the recording');

  const u1 = one.bytes.subarray(uuidAt, uuidAt + 16);
  const u2 = two.bytes.subarray(uuidAt, uuidAt + 16);
  t.notOk(u1.equals(u2), 'two sessions, two UUIDs');
  t.notOk(u1.equals(FIXTURE_UUID.bytes) || u2.equals(FIXTURE_UUID.bytes), 'neither is the recorded one');
  t.notOk(new Uuid(u1).isZero() || new Uuid(u2).isZero(), 'neither is zero');
  t.same([u1, u2], uuids.map((u) => u.bytes), 'they are the UUIDs the sessions were given');
  t.equal(parsePeerInfo(one.probe.messages.at(-1)!.message.body!).uuid, uuids[0]!.toString(), 'and peer-info decodes with it');
});

t.test('replay sends nothing ahead of the client', async (t) => {
  const session = loadSessionFixture(FIXTURE);
  const { port } = await replayServer(t, session);
  const p = await FrameProbe.connect(port);
  t.teardown(() => p.close());
  t.same(await p.step(2, 150), ['settings', 'windowUpdate/0'], 'on connect: only what the recording sent before any client frame');
  p.socket.write(PREFACE);
  const host = session.frames.filter((f) => f.from === 'host');
  p.send(host[0]!, host[1]!, host[2]!, host[3]!);
  t.same(await p.step(3, 150), ['settingsAck', 'headers/1', 'data/1:0x1'], 'up to A, and no further');
  p.send(host[4]!, host[5]!);
  t.same(await p.step(2, 150), ['headers/3', 'data/1:0x201'], 'C: no peer-info before B');
});

t.test('fixture files are checked', async (t) => {
  for (const [text, why] of [
    ['nope', /not JSON/],
    ['{}', /no frames/],
    ['{"frames":[{"from":"x","type":"data","flags":0,"stream":1,"payload":""}]}', /from is host or device/],
    ['{"frames":[{"from":"host","type":"bogus","flags":0,"stream":1,"payload":""}]}', /unknown type/],
    ['{"frames":[{"from":"host","type":"data","flags":0,"stream":1,"payload":"zz"}]}', /not hex/],
  ] as const) {
    t.throws(() => parseSessionFixture(text), { code: 'EXPCVALUE', message: why });
  }
});
