// tsmuxd bench (src/bench) against a real daemon with a simulated phone: every
// case produces its record with figures that add up, CPU is charged to the
// socket's owner found through /proc, and the CLI prints parseable JSON lines.
import t from 'tap';

import type { BenchRecord, ConnectRateRecord, DaemonRecord, IdleRecord, RttRecord, ThroughputRecord } from '../src/bench/records.js';
import { runBench, type BenchOptions } from '../src/bench/run.js';
import { socketOwnerPid } from '../src/bench/proc.js';
import { assertBuilt, runCli } from './helpers/daemon-process.js';
import { startDaemon } from './helpers/usbmuxd-harness.js';

const MiB = 1 << 20;

function options(path: string, emit: (r: BenchRecord) => void, extra: Partial<BenchOptions> = {}): BenchOptions {
  return {
    address: { kind: 'unix', path },
    bytes: MiB,
    repeats: 1,
    cases: new Set(['up', 'down', 'parallel', 'rtt', 'connect', 'idle']),
    parallel: [3],
    rttCount: 20,
    connectSeconds: 0.3,
    connectConcurrency: 4,
    idleConnections: 40,
    daemonPid: process.pid,
    emit,
    log: () => {},
    ...extra,
  };
}

t.test('every case through a tsmuxd daemon with a simulated phone', async (t) => {
  const setup = await startDaemon(t, { sims: 2 });
  const records: BenchRecord[] = [];
  await runBench(options(setup.socketPath, (r) => records.push(r), { deviceCounts: [2] }));
  const throughput = records.filter((r): r is ThroughputRecord => r.kind === 'throughput');
  for (const [direction, connections, devices] of [['up', 1, 1], ['down', 1, 1], ['up', 3, 1], ['down', 3, 1]] as const) {
    const r = throughput.find((x) => x.direction === direction && x.connections === connections && x.devices === devices);
    t.ok(r, `${direction} over ${connections} connection(s)`);
    if (!r) continue;
    t.equal(r.bytes, Math.floor(MiB / connections) * connections, 'the bytes are split evenly over the connections');
    t.ok(r.seconds > 0 && Math.abs(r.mbPerSec - r.bytes / 1e6 / r.seconds) < 1e-6, 'MB/s is bytes over seconds');
    t.equal(r.via, 'sim');
    t.type(r.daemonCpuSec, 'number', 'CPU is charged to the daemon pid');
    t.type(r.jsWakeups, 'number', 'tsmuxd reports its JS wakeups');
  }
  t.notOk(throughput.some((x) => x.devices > 1), 'no multi-phone figure without the devices case');
  const rtt = records.find((r): r is RttRecord => r.kind === 'rtt');
  t.equal(rtt?.count, 20, '20 echo round trips');
  t.ok(rtt && rtt.p50Ms > 0 && rtt.p50Ms <= rtt.p99Ms && rtt.p99Ms <= rtt.maxMs, 'p50 <= p99 <= max');
  const connect = records.find((r): r is ConnectRateRecord => r.kind === 'connect-rate');
  t.ok(connect && connect.cycles > 0 && connect.concurrency === 4, 'Connect cycles ran from 4 workers');
  const idle = records.find((r): r is IdleRecord => r.kind === 'idle');
  t.equal(idle?.connections, 40, '40 idle connections were held open');
  t.equal((await setup.daemon.engine.snapshot()).connections.length, 0, 'every benchmark connection is closed afterwards');

  const both: BenchRecord[] = [];
  await runBench(options(setup.socketPath, (r) => both.push(r), { cases: new Set(['devices']), deviceCounts: [2, 5] }));
  const devices = both.filter((r): r is ThroughputRecord => r.kind === 'throughput');
  t.same(devices.map((r) => [r.direction, r.devices]), [['up', 2], ['down', 2]], 'both phones at once; 5 phones skipped');
});

t.test('a daemon with no phone is a clear error', async (t) => {
  const setup = await startDaemon(t, { sims: 0 });
  await t.rejects(runBench(options(setup.socketPath, () => {})), /no device attached/);
});

t.test('the CLI finds the daemon through its socket and prints JSON lines', async (t) => {
  assertBuilt();
  const setup = await startDaemon(t, { sims: 1 });
  t.equal(socketOwnerPid(setup.socketPath), undefined, 'our own process is never taken for the daemon');
  const run = await runCli(['bench', '--socket', setup.address, '--json', '--cases', 'up,rtt', '--bytes', '2M', '--repeats', '2', '--rtt-count', '10']);
  t.equal(run.code, 0, `exit 0 (${run.stderr.trim()})`);
  const [daemon, ...lines] = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as BenchRecord | DaemonRecord) as [DaemonRecord, ...BenchRecord[]];
  t.match(daemon, { kind: 'daemon', name: 'tsmuxd', pid: process.pid, pidFrom: "the socket's owner", buid: String }, 'first, which daemon was measured');
  t.same(lines.map((r) => `${r.kind}:${r.repeat}`), ['throughput:1', 'rtt:1', 'throughput:2', 'rtt:2'], 'one record per figure and repeat');
  const up = lines[0] as ThroughputRecord;
  t.equal(up.bytes, 2 * MiB);
  t.type(up.daemonCpuSec, 'number', 'the child found the daemon (this test process) as the socket owner');
  t.match(run.stderr, new RegExp(`daemon pid ${process.pid}`), 'and says so');

  const bad = await runCli(['bench', '--socket', setup.address, '--cases', 'up,warp']);
  t.equal(bad.code, 2, 'an unknown case is a usage error');
  t.match(bad.stderr, /unknown case 'warp'/);
});
