// A local user floods the daemon behind a Connect (issue 17): one that is
// still pending (the phone is stopped, so its SYN is never answered) and one
// that succeeds. The daemon must hold at most one read of the client's bytes
// in JS; the rest waits in the kernel's buffer, counted against the client,
// and reaches native code with the fd. Each test runs against a real daemon
// process, reads its RSS from /proc, and times a second client meanwhile.
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';

import t from 'tap';

import { ECHO_PORT, SINK_PORT } from '../src/protocol/sim-ports.js';
import { DIGEST_LENGTH, lengthHeader, writeRandom } from './helpers/flow-helpers.js';
import { attack, describeWatch, mib, MiB, startLocalDaemon, stopPhone, watchDaemon, type LocalDaemon } from './helpers/hostile-local.js';
import { waitUntil } from './helpers/daemon-process.js';
import { rssBounded, scaledForSanitizers } from './helpers/sanitizers.js';
import { binaryConnect, binaryResult, RawClient, within } from './helpers/usbmuxd-harness.js';

/** What a flooding client may make the daemon hold, with room for a loaded CI machine. */
const RSS_GROWTH_BOUND = 64 * MiB;

let ld: LocalDaemon;

t.before(async () => {
  ld = await startLocalDaemon(t);
});

/** An echo round trip through the live phone: other clients' Connects still work. */
async function liveEcho(): Promise<string> {
  const socket = await ld.client.connect(ld.phones[1]!.deviceId, ECHO_PORT);
  try {
    socket.write('still served');
    const [reply] = (await within(once(socket, 'data'), 20_000, 'the echo')) as [Buffer];
    return reply.toString();
  } finally {
    socket.destroy();
  }
}

t.test('a 2 GiB flood behind a Connect to a phone that never answers the SYN', async (t) => {
  const stopped = ld.phones[0]!;
  stopPhone(t, stopped);
  const watch = watchDaemon(ld);
  const flood = attack(t, {
    path: ld.socketPath,
    mode: 'connect-flood',
    count: 1,
    deviceId: stopped.deviceId,
    port: ECHO_PORT,
    bytesEach: 2048 * MiB,
    seconds: 30,
  });
  const totals = await flood.done;
  const report = await watch.stop();
  t.comment(describeWatch('flood behind a pending Connect', report));
  t.comment(`the kernel took ${mib(totals.accepted)} of the 2048 MiB the attacker meant to write; Results ${JSON.stringify(totals.results)} after ${totals.resultMsMin} ms; closed by the daemon: ${totals.closedByDaemon}`);
  t.equal(ld.daemon.exit(), null, 'the daemon is still running');
  t.same(totals.results, { 3: 1 }, 'the Connect is answered, Result 3, when it times out');
  t.ok(totals.resultMsMin! >= 9_000, `after the connect timeout (${totals.resultMsMin} ms)`);
  t.equal(totals.closedByDaemon, 1, 'the bytes behind the failed Connect are then read as commands: garbage, so the client is closed');
  t.ok(totals.accepted < 16 * MiB, `the kernel's buffer held what the daemon did not read (${mib(totals.accepted)} taken)`);
  rssBounded(t, report.rssGrowth < RSS_GROWTH_BOUND, `RSS grew ${mib(report.rssGrowth)} (< ${mib(RSS_GROWTH_BOUND)})`);
  t.same(report.probeFailures, [], 'every ListDevices of a second client was answered');
  t.ok(report.probes > 10, `${report.probes} probes ran meanwhile`);
  t.equal(await liveEcho(), 'still served', 'a Connect to the other phone works');
});

t.test('a flood behind a Connect that succeeds arrives whole, through the kernel and native code', async (t) => {
  const bytes = scaledForSanitizers(256 * MiB, 4);
  const watch = watchDaemon(ld);
  const client = await RawClient.open(t, ld.socketPath);
  // The Connect, the sink's length header and every byte go out at once,
  // without waiting for the Result.
  client.send(binaryConnect(1, ld.phones[1]!.deviceId, SINK_PORT));
  client.send(lengthHeader(bytes));
  const started = performance.now();
  const [sent, result] = await Promise.all([writeRandom(client.socket, bytes), client.read(20, 120_000)]);
  const digest = await client.read(DIGEST_LENGTH, 120_000);
  const ms = performance.now() - started;
  const report = await watch.stop();
  t.comment(describeWatch(`flood of ${mib(bytes)} behind a Connect that succeeds`, report));
  t.comment(`${mib(bytes)} in ${(ms / 1000).toFixed(1)} s (${((bytes / MiB) / (ms / 1000)).toFixed(0)} MiB/s)`);
  t.ok(result.equals(binaryResult(1, 0)), 'the Connect succeeds');
  t.ok(digest.equals(sent), 'the sink saw every byte sent behind the Connect, in order (SHA-256)');
  rssBounded(t, report.rssGrowth < RSS_GROWTH_BOUND, `RSS grew ${mib(report.rssGrowth)} (< ${mib(RSS_GROWTH_BOUND)})`);
  t.same(report.probeFailures, [], 'every ListDevices of a second client was answered');
});

t.test('a client that sends a Connect and leaves while it is pending costs nothing lasting', async (t) => {
  const stopped = ld.phones[0]!;
  stopPhone(t, stopped);
  const fds = () => readdirSync(`/proc/${ld.daemon.pid}/fd`).length;
  const before = fds();
  const socket = net.connect(ld.socketPath);
  await once(socket, 'connect');
  socket.resume();  // takes the Result, so the daemon's FIN ends it
  socket.end(binaryConnect(1, stopped.deviceId, ECHO_PORT));
  await once(socket, 'close');
  // The pending pseudo-TCP connection ends with its timeout; nothing of it stays.
  const settled = await waitUntil(async () => fds() <= before && (await ld.client.stats()).connections.length === 0, 25_000, 'the pending connection to end').catch(() => false);
  t.ok(settled, `the daemon's fds are back to ${before} (now ${fds()}) and it holds no connection`);
  t.equal(ld.daemon.exit(), null, 'the daemon is still running');
  t.equal(await liveEcho(), 'still served', 'a Connect to the other phone works');
});
