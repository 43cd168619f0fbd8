// A local user attacks the command phase (issue 17): requests pipelined by a
// client that never reads the replies, a thousand clients that each send one
// header byte a second, clients that close in the middle of a reply, and a
// thousand clients flooding behind pending Connects and pipelining requests
// at once. Each runs against a real daemon process: its RSS is read from
// /proc and a second client is timed meanwhile.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import { ECHO_PORT } from '../src/protocol/sim-ports.js';
import { waitUntil } from './helpers/daemon-process.js';
import { attack, describeWatch, mib, MiB, startLocalDaemon, stopPhone, watchDaemon, type LocalDaemon } from './helpers/hostile-local.js';
import { rssBounded, scaledForSanitizers } from './helpers/sanitizers.js';
import { plistRequest } from './helpers/usbmuxd-harness.js';

let ld: LocalDaemon;

t.before(async () => {
  ld = await startLocalDaemon(t);
  // Preflight pairs with each sim and keeps the record: what ReadPairRecord reads.
  const record = join(ld.configDir, `${ld.phones[1]!.udid}.plist`);
  await waitUntil(() => existsSync(record), 20_000, `the pair record ${record}`);
});

const readPairRecord = () => plistRequest(7, { MessageType: 'ReadPairRecord', PairRecordID: ld.phones[1]!.udid });
const listDevices = () => plistRequest(7, { MessageType: 'ListDevices' });

t.test('100 MiB of ReadPairRecord requests pipelined by a client that never reads', async (t) => {
  const watch = watchDaemon(ld);
  const flood = attack(t, { path: ld.socketPath, mode: 'pipeline', count: 1, request: readPairRecord(), bytesEach: 100 * MiB, seconds: 40 });
  const totals = await flood.done;
  const report = await watch.stop();
  t.comment(describeWatch('100 MiB of pipelined ReadPairRecord, replies never read', report));
  t.comment(`the kernel took ${mib(totals.accepted)} of the 100 MiB the attacker meant to write; closed by the daemon: ${totals.closedByDaemon}`);
  t.equal(ld.daemon.exit(), null, 'the daemon is still running');
  t.equal(totals.closedByDaemon, 1, 'the client is closed for leaving its replies unread');
  t.match(ld.daemon.stderr.text, /closed: \d+ bytes of replies left unread for 10000 ms/, 'with a log line that says why');
  t.ok(totals.accepted < 16 * MiB, `the daemon stopped reading its requests (${mib(totals.accepted)} taken by the kernel)`);
  rssBounded(t, report.rssGrowth < 64 * MiB, `RSS grew ${mib(report.rssGrowth)} (< 64 MiB)`);
  t.same(report.probeFailures, [], 'every ListDevices of a second client was answered');
  t.ok(report.latencyP50Ms < 500, `the second client was not held back (p50 ${report.latencyP50Ms.toFixed(1)} ms; it was 2 s when the daemon read every request)`);
});

const slowCount = scaledForSanitizers(1_000, 4);

t.test(`${slowCount} slow clients, each sending one header byte a second`, async (t) => {
  const watch = watchDaemon(ld);
  const slow = attack(t, { path: ld.socketPath, mode: 'slow-header', count: slowCount, request: listDevices(), seconds: 12 });
  await slow.started;
  const totals = await slow.done;
  const report = await watch.stop();
  t.comment(describeWatch(`${slowCount} clients sending a byte a second`, report));
  t.comment(`${totals.accepted} bytes sent in all; closed by the daemon: ${totals.closedByDaemon}; errors ${JSON.stringify(totals.errors)}`);
  t.equal(ld.daemon.exit(), null, 'the daemon is still running');
  t.same(totals.errors, {}, 'every slow client connected and stayed connected');
  rssBounded(t, report.rssGrowth < 64 * MiB, `RSS grew ${mib(report.rssGrowth)} (< 64 MiB)`);
  t.same(report.probeFailures, [], 'every ListDevices of a second client was answered');
});

t.test('clients that close in the middle of a reply', async (t) => {
  const watch = watchDaemon(ld);
  const requests = [readPairRecord(), listDevices(), plistRequest(7, { MessageType: 'tsmuxdStats' }), plistRequest(7, { MessageType: 'ReadBUID' })];
  const runs = requests.map((request) => attack(t, { path: ld.socketPath, mode: 'close-mid-reply', count: 2, request, seconds: 4 }));
  const totals = await Promise.all(runs.map((r) => r.done));
  const report = await watch.stop();
  const cycles = totals.reduce((n, r) => n + r.cycles, 0);
  t.comment(describeWatch(`${cycles} requests each abandoned by its client mid-reply`, report));
  t.ok(cycles > 100, `${cycles} requests were sent and abandoned`);
  t.equal(ld.daemon.exit(), null, 'the daemon is still running');
  t.same(report.probeFailures, [], 'every ListDevices of a second client was answered');
  t.ok((await ld.client.readBUID()).length > 0, 'ReadBUID still works');
});

const crowd = scaledForSanitizers(1_000, 4);

t.test(`${crowd} clients at once: half flood behind pending Connects, half pipeline requests and never read`, async (t) => {
  const stopped = ld.phones[0]!;
  stopPhone(t, stopped);
  const half = crowd / 2;
  const watch = watchDaemon(ld);
  // Each pipeliner is closed 10 s after its replies stop being taken, and
  // before that the daemon serves it ~50 ReadPairRecords (one file read each):
  // 25,000 reads in all, which took more than 40 s on a CI machine shared
  // with QEMU guests (377 of 500 closed in time). The attack ends as soon as
  // every client is closed, so the longer deadline costs nothing when quick.
  const floods = attack(t, { path: ld.socketPath, mode: 'connect-flood', count: half, deviceId: stopped.deviceId, port: ECHO_PORT, bytesEach: 4 * MiB, seconds: 70 });
  const pipes = attack(t, { path: ld.socketPath, mode: 'pipeline', count: half, request: readPairRecord(), bytesEach: 4 * MiB, seconds: 70 });
  const [flooded, piped] = await Promise.all([floods.done, pipes.done]);
  const report = await watch.stop();
  t.comment(describeWatch(`${crowd} hostile clients`, report));
  t.comment(`Connect floods: ${mib(flooded.accepted)} taken of ${mib(half * 4 * MiB)} meant, Results ${JSON.stringify(flooded.results)} after ${flooded.resultMsMin}..${flooded.resultMsMax} ms, ${flooded.closedByDaemon} closed by the daemon, errors ${JSON.stringify(flooded.errors)}`);
  t.comment(`pipelines: ${mib(piped.accepted)} taken of ${mib(half * 4 * MiB)} meant, ${piped.closedByDaemon} closed by the daemon, errors ${JSON.stringify(piped.errors)}`);
  t.equal(ld.daemon.exit(), null, 'the daemon is still running');
  t.same({ ...flooded.errors, ...piped.errors }, {}, 'every attacker connected (a full listen backlog is retried)');
  t.same(flooded.results, { 3: half }, `all ${half} Connects are answered, Result 3, when they time out`);
  t.equal(piped.closedByDaemon, half, `all ${half} pipelining clients are closed for leaving their replies unread`);
  rssBounded(t, report.rssGrowth < 256 * MiB, `RSS grew ${mib(report.rssGrowth)} (< 256 MiB for ${crowd} clients)`);
  // One client among a thousand busy ones gets about a thousandth of the
  // daemon: on a loaded 2-core CI machine a probe can miss its 10 s, so the
  // bar is that the second client is served during the attack and at once
  // after it, and the figures are printed.
  t.ok(report.probes >= report.probeFailures.length, `the second client was answered during the attack (${report.probes} answered, ${report.probeFailures.length} not)`);
  const started = performance.now();
  t.ok((await ld.client.listDevices()).length > 0, 'and right after it');
  t.comment(`a ListDevices right after the attack: ${(performance.now() - started).toFixed(1)} ms`);
});
