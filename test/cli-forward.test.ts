// `tsmuxd forward` as users run it (the built CLI, a child process), against
// a daemon with a simulated phone: 64 MiB through a mapping to the sink (9)
// with the sink's SHA-256 equal to ours while a second mapping echoes (7),
// clients waiting for a phone to attach, a refused device port, and silence
// on stdout without a terminal or --json.
import { createHash, randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';

import t from 'tap';

import { startPeer } from '../src/sim/peer.js';
import { ECHO_PORT, SINK_PORT } from '../src/protocol/sim-ports.js';
import { assertBuilt, connectWithRetry, freePort, runCli, spawnDaemon, type DaemonProcess } from './helpers/daemon-process.js';
import { readExactly } from './helpers/harness.js';
import { SLOW, startDaemon, tempDir } from './helpers/usbmuxd-harness.js';

assertBuilt();

const MiB = 1 << 20;

interface ForwardEvent {
  event: string;
  mapping?: string;
  port?: number;
  devicePort?: number;
  conn?: number;
  bytesToDevice?: number;
  bytesFromDevice?: number;
  message?: string;
  udid?: string;
  deviceId?: number;
}

function events(proc: DaemonProcess): ForwardEvent[] {
  return proc.stdout.lines().map((l) => JSON.parse(l) as ForwardEvent);
}

/** Waits for a listening line per mapping; returns device port -> local port. */
async function listening(proc: DaemonProcess, count: number): Promise<Map<number, number>> {
  await proc.stdout.waitFor(new RegExp(`(?:"event":"listening"[^\\n]*\\n[^]*){${count}}`), SLOW, proc.exited);
  return new Map(events(proc).filter((e) => e.event === 'listening').map((e) => [e.devicePort!, e.port!]));
}

async function connectLocal(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  return s;
}

/** Sends `total` random bytes to the sink as one request; resolves with both digests. */
async function throughSink(socket: net.Socket, total: number): Promise<{ ours: string; theirs: string }> {
  const hash = createHash('sha256');
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(total));
  socket.write(header);
  const chunk = Buffer.alloc(MiB);
  for (let sent = 0; sent < total; ) {
    const n = Math.min(chunk.length, total - sent);
    const piece = Buffer.from(randomFillSync(chunk).subarray(0, n));
    hash.update(piece);
    sent += n;
    if (!socket.write(piece)) await once(socket, 'drain');
  }
  const theirs = (await readExactly(socket, 32)).toString('hex');
  return { ours: hash.digest('hex'), theirs };
}

t.test('64 MiB to the sink and an echo at once, through two mappings', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const phone = setup.daemon.devices.visible()[0];
  const fwd = spawnDaemon(t, ['forward', '--json', '--socket', setup.address, '--udid', phone.serialNumber, '0:9', `127.0.0.1:0:${ECHO_PORT}`]);
  const ports = await listening(fwd, 2);
  t.same([...ports.keys()].sort(), [ECHO_PORT, SINK_PORT], 'one local port per mapping');

  const sink = await connectLocal(ports.get(SINK_PORT)!);
  const echo = await connectLocal(ports.get(ECHO_PORT)!);
  const echoed = randomFillSync(Buffer.alloc(4 * MiB));
  const started = process.hrtime.bigint();
  const [digests, back] = await Promise.all([
    throughSink(sink, 64 * MiB),
    (async () => {
      echo.write(echoed);
      return readExactly(echo, echoed.length);
    })(),
  ]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  t.equal(digests.theirs, digests.ours, 'the SHA-256 the sink returns is the one computed here');
  t.ok(back.equals(echoed), 'the echo mapping returned its 4 MiB intact at the same time');
  t.comment(`forward: 64 MiB to the sink (+4 MiB echoed) in ${seconds.toFixed(2)} s: ${(64 / seconds).toFixed(1)} MiB/s`);

  sink.destroy();
  echo.destroy();
  await fwd.stdout.waitFor(/(?:"event":"close"[^\n]*\n[^]*){2}/, SLOW, fwd.exited);
  const closes = events(fwd).filter((e) => e.event === 'close');
  const bySink = closes.find((e) => e.mapping === `127.0.0.1:0:${SINK_PORT}`);
  const byEcho = closes.find((e) => e.mapping === `127.0.0.1:0:${ECHO_PORT}`);
  t.match(bySink, { bytesToDevice: 64 * MiB + 8, bytesFromDevice: 32, deviceId: phone.deviceId }, 'the sink connection counted every byte');
  t.match(byEcho, { bytesToDevice: 4 * MiB, bytesFromDevice: 4 * MiB });
  t.notOk(closes.some((e) => 'error' in e), 'closing is not an error');
  const opens = events(fwd).filter((e) => e.event === 'open');
  t.equal(opens.length, 2, 'an open line per connection');
  t.match(opens[0], { udid: phone.serialNumber, deviceId: phone.deviceId });

  const exit = await fwd.stop();
  t.equal(exit.code, 0, 'SIGTERM stops it cleanly');
  t.equal(fwd.stderr.text, '', 'no errors');
});

t.test('clients wait for a phone; a refused port is reported; no output off a terminal', async (t) => {
  const dir = tempDir(t);
  const cable = join(dir, 'late.cable');
  const setup = await startDaemon(t, { sims: 0, cables: [cable] });

  const fwd = spawnDaemon(t, ['forward', '--json', '--socket', setup.address, `0:${ECHO_PORT}`, '0:1']);
  const ports = await listening(fwd, 2);
  const early = await connectLocal(ports.get(ECHO_PORT)!);
  early.write('sent before any phone was there');
  await fwd.stdout.waitFor(/"event":"waiting"/, SLOW, fwd.exited);

  const peer = await startPeer({ cable });
  t.teardown(() => peer.close());
  const back = await readExactly(early, 'sent before any phone was there'.length);
  t.equal(back.toString(), 'sent before any phone was there', 'the waiting client went through once the phone attached');
  early.destroy();

  const refused = await connectLocal(ports.get(1)!);
  await once(refused, 'close');
  const err = await fwd.stdout.waitFor(/"event":"error"[^\n]*/, SLOW, fwd.exited);
  t.match(err[0], /connecting to device \d+ port 1 failed: .*CONNREFUSED/, 'a refused device port is an error line');
  t.equal((await fwd.stop()).code, 0);

  const port = await freePort();
  const quiet = spawnDaemon(t, ['forward', '--socket', setup.address, `${port}:${ECHO_PORT}`]);
  const c = await connectWithRetry(port, '127.0.0.1', SLOW);
  c.write('quiet');
  t.equal((await readExactly(c, 5)).toString(), 'quiet');
  c.destroy();
  t.equal((await quiet.stop()).code, 0);
  t.equal(quiet.stdout.text, '', 'nothing on stdout without a terminal or --json');
  t.equal(quiet.stderr.text, '', 'and no errors');
});

t.test('bad mappings are usage errors', async (t) => {
  for (const bad of ['9', '0:0', '1:2:3:4', '70000:9', '1:70000']) {
    const r = await runCli(['forward', '--socket', 'UNIX:/nonexistent', bad]);
    t.equal(r.code, 2, `'${bad}' exits 2`);
    t.match(r.stderr, /tsmuxd forward: /);
  }
  const none = await runCli(['forward']);
  t.equal(none.code, 2);
  t.match(none.stderr, /at least one LOCAL:DEVICE_PORT/);
});
