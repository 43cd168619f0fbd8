// `tsmuxd top` as users run it (the built CLI, a child process): a single
// JSON snapshot shows a connection while a transfer to the sink is under
// way, JSON lines carry rates from successive snapshots, the text screen has
// both tables, and another usbmuxd is named as not supporting stats.
import { createHash, randomFillSync } from 'node:crypto';
import { once } from 'node:events';

import t from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { ECHO_PORT, SINK_PORT } from '../src/protocol/sim-ports.js';
import { assertBuilt, runCli, spawnDaemon } from './helpers/daemon-process.js';
import { startForeignDaemon } from './helpers/foreign-daemon.js';
import { readExactly } from './helpers/harness.js';
import { SLOW, startDaemon, tempDir, waitUntil } from './helpers/usbmuxd-harness.js';

assertBuilt();

const MiB = 1 << 20;

interface Frame {
  intervalMs: number | null;
  devices: Array<Record<string, unknown> & { rateToDevice: number | null }>;
  connections: Array<Record<string, unknown> & { devicePort: number; bytesToDevice: number; rateToDevice: number | null }>;
}

t.test('top --once --json shows a connection while a transfer runs', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const phone = setup.daemon.devices.visible()[0];
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW, progName: 'top-test' });
  const sink = await client.connect(phone.deviceId, SINK_PORT);
  t.teardown(() => sink.destroy());

  // Announce 8 MiB, send half, and hold the rest back until top has looked.
  const total = 8 * MiB;
  const data = randomFillSync(Buffer.alloc(total));
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(total));
  sink.write(header);
  if (!sink.write(data.subarray(0, total / 2))) await once(sink, 'drain');
  await waitUntil(async () => {
    const c = (await client.stats()).connections.find((x) => x.devicePort === SINK_PORT);
    return c && c.bytesToDevice === 8 + total / 2;
  }, 'the first half to reach the phone');

  const r = await runCli(['top', '--once', '--json', '--socket', setup.address]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.equal(lines.length, 1, 'one JSON line');
  const frame = JSON.parse(lines[0]) as Frame;
  t.equal(frame.intervalMs, null, 'a single snapshot has no interval');
  const c = frame.connections.find((x) => x.devicePort === SINK_PORT);
  t.ok(c, 'the sink connection is listed');
  t.match(c, {
    state: 'established',
    deviceId: phone.deviceId,
    udid: phone.serialNumber,
    progName: 'top-test',
    bytesToDevice: 8 + total / 2,
    bytesFromDevice: 0,
    rateToDevice: null,
    receiveWindow: 256 * 1024,
  });
  t.ok((c!.sendWindow as number) > 0, 'the window the phone advertises');
  t.equal(typeof c!.rttMs, 'number', 'an RTT');
  t.match(frame.devices[0], { deviceId: phone.deviceId, udid: phone.serialNumber, state: 'active', connections: 1 });

  sink.write(data.subarray(total / 2));
  const digest = await readExactly(sink, 32);
  t.equal(digest.toString('hex'), createHash('sha256').update(data).digest('hex'), 'the transfer completes intact');
});

t.test('top --json streams frames with rates; the text screen', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const phone = setup.daemon.devices.visible()[0];
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const echo = await client.connect(phone.deviceId, ECHO_PORT);
  t.teardown(() => echo.destroy());
  const payload = randomFillSync(Buffer.alloc(MiB));

  const top = spawnDaemon(t, ['top', '--json', '--interval', '0.2', '--socket', setup.address]);
  await top.stdout.waitFor(/^\{.*\n/, SLOW, top.exited);
  echo.write(payload);
  t.ok((await readExactly(echo, payload.length)).equals(payload));
  // The frame after both ends of the echo have been counted.
  const frames = () => top.stdout.lines().map((l) => JSON.parse(l) as Frame);
  const later = await waitUntil(() => {
    const all = frames();
    const f = all[all.length - 1];
    const c = f?.connections.find((x) => x.devicePort === ECHO_PORT);
    return all.length >= 2 && c && c.bytesToDevice === MiB ? f : null;
  }, 'a frame that counted the echo');
  t.ok(later.intervalMs! > 0, 'later frames know the interval');
  const c = later.connections.find((x) => x.devicePort === ECHO_PORT)!;
  t.equal(typeof c.rateToDevice, 'number', 'and carry rates');
  t.ok(c.rateToDevice! >= 0);
  t.ok(frames().some((f) => f.connections.some((x) => x.devicePort === ECHO_PORT && (x.rateToDevice ?? 0) > 0)), 'a frame saw bytes moving');
  t.equal((await top.stop()).code, 0, 'SIGTERM ends it cleanly');

  const text = await runCli(['top', '--once', '--socket', setup.address]);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^tsmuxd top {2}UNIX:\S+ {2}\d\d:\d\d:\d\d {2}1 device\(s\), 1 connection\(s\)$/m);
  t.match(text.stdout, /^DEV +UDID +STATE +CONNS +TO DEVICE/m);
  t.match(text.stdout, new RegExp(`^ *\\d+ +${phone.deviceId} +${ECHO_PORT} +\\d+ +established +1\\.0 MiB +- +1\\.0 MiB`, 'm'));
});

t.test('top against another usbmuxd says it does not support stats', async (t) => {
  const foreign = await startForeignDaemon(t, tempDir(t));
  for (const args of [['--once'], ['--once', '--json'], []]) {
    const r = await runCli(['top', ...args, '--socket', foreign.address]);
    t.equal(r.code, 1, `top ${args.join(' ')} exits 1`);
    t.match(r.stderr, /^tsmuxd top: the daemon at UNIX:\S+ does not support stats: it answered Result 1/);
    t.equal(r.stdout, '', 'and prints no table');
  }
  const bad = await runCli(['top', '--interval', '0', '--socket', foreign.address]);
  t.equal(bad.code, 2, 'a bad interval is a usage error');
});
