// The stats request (MessageType tsmuxdStats) over the real socket, with a
// simulated phone: byte counts match what test connections moved through
// echo (7) and sink (9), totals outlive connections, a reader that stops
// shows up as queued bytes, and an unknown MessageType is still Result 1.
import { createHash, randomBytes } from 'node:crypto';

import t from 'tap';

import { UsbmuxError } from '../src/client/channel.js';
import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { ECHO_PORT, SINK_PORT, SOURCE_PORT } from '../src/protocol/sim-ports.js';
import { startForeignDaemon } from './helpers/foreign-daemon.js';
import { readExactly } from './helpers/harness.js';
import { plistRequest, RawClient, SLOW, startDaemon, tempDir, waitUntil } from './helpers/usbmuxd-harness.js';

const lengthPrefix = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};

t.test('stats show what each connection moved', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW, progName: 'stats-test' });
  const [phone] = await client.listDevices();

  const echoed = randomBytes(300_000);
  const echo = await client.connect(phone.deviceId, ECHO_PORT);
  t.teardown(() => echo.destroy());
  echo.write(echoed);
  t.ok((await readExactly(echo, echoed.length)).equals(echoed), 'the echo service returned every byte');

  const sunk = randomBytes(1 << 20);
  const sink = await client.connect(phone.deviceId, SINK_PORT);
  t.teardown(() => sink.destroy());
  sink.write(Buffer.concat([lengthPrefix(sunk.length), sunk]));
  const digest = await readExactly(sink, 32);
  t.equal(digest.toString('hex'), createHash('sha256').update(sunk).digest('hex'), 'the sink hashed what we sent');

  const stats = await client.stats();
  t.equal(stats.statsVersion, 1);
  t.ok(stats.timeMs > 0, 'a monotonic time stamp');
  t.ok(stats.engine.connectionsTotal! >= 2, 'the global counters come along');

  const onPort = (port: number) => stats.connections.filter((c) => c.devicePort === port);
  t.equal(onPort(ECHO_PORT).length, 1, 'one echo connection');
  t.equal(onPort(SINK_PORT).length, 1, 'one sink connection');
  const e = onPort(ECHO_PORT)[0];
  t.match(e, {
    role: 'host',
    state: 'established',
    deviceId: phone.deviceId,
    udid: phone.serialNumber,
    progName: 'stats-test',
    bytesToDevice: echoed.length,
    bytesFromDevice: echoed.length,
    inFlight: 0,
    queued: 0,
    receiveWindow: 256 * 1024,
  });
  t.ok(e.sourcePort >= 1, 'a source port');
  t.ok(e.sendWindow > 0, `the phone advertises a window (${e.sendWindow})`);
  t.ok(e.rttSamples > 0 && typeof e.rttMs === 'number' && e.rttMs > 0, `an RTT was measured (${e.rttMs?.toFixed(3)} ms over ${e.rttSamples} samples)`);
  t.equal(typeof e.client, 'number', 'the client that opened it');

  const s = onPort(SINK_PORT)[0];
  t.equal(s.bytesToDevice, 8 + sunk.length, 'sink: the length prefix and the data went to the device');
  t.equal(s.bytesFromDevice, 32, 'sink: its digest came back');

  t.equal(stats.devices.length, 1, 'one device link');
  const d = stats.devices[0];
  t.match(d, { role: 'host', state: 'active', version: 2, deviceId: phone.deviceId, udid: phone.serialNumber, visible: true, congested: false });
  t.ok(d.connections >= 2, 'the device counts its live connections');
  t.ok(d.bytesToDevice >= echoed.length + 8 + sunk.length, 'device totals include both connections');
  t.ok(d.bytesFromDevice >= echoed.length + 32);
  t.ok(d.usbBytesOut > d.bytesToDevice, 'USB bytes include the mux and TCP headers');
  t.equal(d.handle, e.handle, 'connections name their device handle');

  echo.destroy();
  sink.destroy();
  const after = await waitUntil(async () => {
    const now = await client.stats();
    return now.connections.some((c) => c.devicePort === ECHO_PORT || c.devicePort === SINK_PORT) ? null : now;
  }, 'the closed connections to leave the stats');
  t.ok(after.devices[0].bytesToDevice >= d.bytesToDevice, 'device totals outlive their connections');
  t.ok(after.devices[0].connectionsTotal >= 2);
});

t.test('a reader that stops shows up as queued bytes and a full window', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [phone] = await client.listDevices();
  const source = await client.connect(phone.deviceId, SOURCE_PORT);
  t.teardown(() => source.destroy());
  source.pause();
  source.write(lengthPrefix(64 << 20));
  const stuck = await waitUntil(async () => {
    const c = (await client.stats()).connections.find((x) => x.devicePort === SOURCE_PORT);
    // Our window is full: everything the phone may send is queued here, unACKed.
    return c && c.queued > 0 && c.bytesFromDevice - c.queued > 0 ? c : null;
  }, 'the source connection to back up');
  t.ok(stuck.queued <= stuck.receiveWindow, `queued bytes stay within the window we advertise (${stuck.queued})`);
  t.equal(stuck.bytesToDevice, 8, 'only the request went out');
});

t.test('raw wire: the stats reply keeps the tag, the client stays in command state, unknown types get Result 1', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const raw = await RawClient.open(t, setup.socketPath);
  raw.send(plistRequest(41, { MessageType: 'tsmuxdStats' }));
  const stats = await raw.readPlist();
  t.equal(stats.frame.version, 1);
  t.equal(stats.frame.tag, 41, 'the request tag comes back');
  t.equal(stats.dict.MessageType, 'tsmuxdStats');
  t.ok(Array.isArray(stats.dict.devices) && Array.isArray(stats.dict.connections));

  raw.send(plistRequest(42, { MessageType: 'NoSuchMessage' }));
  const unknown = await raw.readPlist();
  t.equal(unknown.frame.tag, 42);
  t.same(unknown.dict, { MessageType: 'Result', Number: 1 }, 'an unknown MessageType is Result 1');

  raw.send(plistRequest(43, { MessageType: 'tsmuxdstats' }));
  t.same((await raw.readPlist()).dict, { MessageType: 'Result', Number: 1 }, 'the name is case-sensitive');

  raw.send(plistRequest(44, { MessageType: 'ListDevices' }));
  const list = await raw.readPlist();
  t.equal(list.frame.tag, 44);
  t.equal((list.dict.DeviceList as unknown[]).length, 1, 'the socket still takes commands');
});

t.test('the client says when a daemon does not support stats', async (t) => {
  const foreign = await startForeignDaemon(t, tempDir(t));
  const err = await new UsbmuxClient({ address: foreign.address }).stats().catch((e: unknown) => e);
  t.ok(err instanceof UsbmuxError);
  t.equal((err as UsbmuxError).code, 'ERR_STATS_UNSUPPORTED');
  t.match((err as UsbmuxError).message, /does not support stats/);
  t.same(foreign.requests, ['tsmuxdStats']);
});

t.test('a snapshot of an idle engine is empty; a closed engine rejects with ERR_ENGINE_CLOSED', async (t) => {
  const setup = await startDaemon(t, { sims: 0 });
  const snap = await setup.daemon.engine.snapshot();
  t.same(snap.devices, [], 'no devices yet');
  t.same(snap.connections, []);
  setup.daemon.engine.close();
  await t.rejects(setup.daemon.engine.snapshot(), { code: 'ERR_ENGINE_CLOSED' });
});

t.test('the snapshot is asynchronous: callers at once share one collection, and the JS thread never waits', async (t) => {
  const setup = await startDaemon(t, { sims: 0 });
  const wakeupsBefore = setup.daemon.engine.stats().jsWakeups;
  const first = setup.daemon.engine.snapshot();
  const second = setup.daemon.engine.snapshot();
  t.equal(first, second, 'a second caller while one is in flight shares its promise');
  let settled = false;
  void first.then(() => (settled = true));
  await Promise.resolve();
  t.notOk(settled, 'the answer comes from the event thread later, not from a call that waited');
  const snap = await first;
  t.ok(Array.isArray(snap.connections), 'it resolves with the snapshot');
  t.ok(setup.daemon.engine.stats().jsWakeups > wakeupsBefore, 'it arrived as an event batch');
  const third = setup.daemon.engine.snapshot();
  t.not(third, first, 'once answered, the next call asks again');
  await third;
  setup.daemon.engine.close();
  await t.rejects(setup.daemon.engine.snapshot(), { code: 'ERR_ENGINE_CLOSED' });
});
