// tsmuxd bench's Connect cycle as the lab measures it (--connect-count,
// --connect-echo): a fixed number of cycles, each a Connect to the sim's echo
// port with one byte each way, timed one by one, through a real daemon with a
// simulated phone.
import t from 'tap';

import type { BenchRecord, ConnectRateRecord, DaemonRecord } from '../src/bench/records.js';
import { summarize } from '../src/bench/report.js';
import { runBench, type BenchOptions } from '../src/bench/run.js';
import { assertBuilt, runCli } from './helpers/daemon-process.js';
import { startDaemon, type DaemonSetup } from './helpers/usbmuxd-harness.js';

function options(path: string, emit: (r: BenchRecord) => void, extra: Partial<BenchOptions>): BenchOptions {
  return {
    address: { kind: 'unix', path },
    bytes: 1 << 20,
    repeats: 1,
    cases: new Set(['connect']),
    parallel: [],
    rttCount: 10,
    connectSeconds: 30,
    connectConcurrency: 1,
    idleConnections: 1,
    daemonPid: process.pid,
    emit,
    log: () => {},
    ...extra,
  };
}

/** Payload bytes the daemon's engine moved to and from its phones so far. */
function payloadBytes(setup: DaemonSetup): { toDevice: number; fromDevice: number } {
  const s = setup.daemon.engine.stats();
  return { toDevice: s.payloadBytesToDevice, fromDevice: s.payloadBytesFromDevice };
}

t.test('a counted run of Connect cycles with one byte each way', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const before = payloadBytes(setup);
  const records: BenchRecord[] = [];
  // connectSeconds 30 would outlast the test's patience: the count must be what stops it.
  await runBench(options(setup.socketPath, (r) => records.push(r), { connectCount: 60, connectEcho: true }));
  const r = records.find((x): x is ConnectRateRecord => x.kind === 'connect-rate');
  t.ok(r, 'one Connect-rate record');
  if (!r) return;
  t.equal(r.cycles, 60, 'exactly the counted cycles');
  t.equal(r.concurrency, 1);
  t.equal(r.echoBytes, 1, 'marked as cycles with one byte each way');
  t.ok(Math.abs(r.perSec - r.cycles / r.seconds) < 1e-6, 'the rate is cycles over seconds');
  t.ok(r.p50Ms! > 0 && r.p50Ms! <= r.p99Ms! && r.p99Ms! <= r.maxMs!, `cycle times p50 ${r.p50Ms?.toFixed(2)} <= p99 ${r.p99Ms?.toFixed(2)} <= max`);
  t.ok(r.maxMs! <= r.seconds * 1000, 'no cycle took longer than the run');
  t.type(r.daemonCpuUsPerConnect, 'number', 'CPU per Connect is charged to the daemon pid');
  const after = payloadBytes(setup);
  t.same(
    { toDevice: after.toDevice - before.toDevice, fromDevice: after.fromDevice - before.fromDevice },
    { toDevice: 60, fromDevice: 60 },
    'the daemon carried one byte to the phone and one back per cycle',
  );
  t.equal((await setup.daemon.engine.snapshot()).connections.length, 0, 'every cycle closed its connection');

  const plain: BenchRecord[] = [];
  await runBench(options(setup.socketPath, (x) => plain.push(x), { connectCount: 25, connectConcurrency: 5 }));
  const p = plain[0] as ConnectRateRecord;
  t.equal(p.cycles, 25, 'five loops share the 25 cycles');
  t.equal(p.echoBytes, undefined, 'without --connect-echo: Connect and close');
  const plainAfter = payloadBytes(setup);
  t.same([plainAfter.toDevice - after.toDevice, plainAfter.fromDevice - after.fromDevice], [0, 0], 'no payload without the echo');

  const rows = summarize([r, p]);
  t.same(
    rows.map((x) => x.name),
    ['Connect + 1 B echo rate (1 concurrent)', 'Connect + 1 B echo rate (1 concurrent): cycle time', 'Connect rate (5 concurrent)', 'Connect rate (5 concurrent): cycle time'],
    'the summary names the echo cycle apart and gives each rate its cycle times',
  );
});

t.test('the CLI: --connect-count and --connect-echo', async (t) => {
  assertBuilt();
  const setup = await startDaemon(t, { sims: 1 });
  const run = await runCli(['bench', '--socket', setup.address, '--json', '--cases', 'connect', '--connect-count', '40', '--connect-echo', '--concurrency', '1', '--repeats', '1']);
  t.equal(run.code, 0, `exit 0 (${run.stderr.trim()})`);
  const [daemon, ...lines] = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as BenchRecord | DaemonRecord);
  t.match(daemon, { kind: 'daemon', name: 'tsmuxd' });
  t.match(lines, [{ kind: 'connect-rate', cycles: 40, concurrency: 1, echoBytes: 1, p50Ms: Number, p99Ms: Number, daemonCpuUsPerConnect: Number }]);

  const table = await runCli(['bench', '--socket', setup.address, '--cases', 'connect', '--connect-count', '10', '--connect-echo', '--repeats', '1']);
  t.equal(table.code, 0);
  t.match(table.stdout, /Connect \+ 1 B echo rate \(8 concurrent\): cycle time +[\d.]+ +p50 ms +[\d.]+ +p99 ms/, 'the table has the cycle times');

  for (const bad of ['0', '2.5', 'many']) {
    const r = await runCli(['bench', '--socket', setup.address, '--cases', 'connect', '--connect-count', bad]);
    t.equal(r.code, 2, `--connect-count ${bad} is a usage error`);
    t.match(r.stderr, /--connect-count needs a whole number above 0/);
  }
});
