// tsmuxd bench's tunnel cases (src/bench/run.ts): the same transfers and echo
// round trips through the phone's CoreDeviceProxy tunnel, beside the plain
// mux connection, with tsmuxd as a child process and its supervised `--sim`
// phone (lwIP is one stack per process, so no phone runs beside the daemon
// here). They skip with one line for an iOS 17.0 phone and for a daemon that
// is not tsmuxd (a proxy to ours that answers the tunnel and stats requests
// Result 1, as usbmuxd answers a request it does not know).
import net from 'node:net';
import { join } from 'node:path';

import t from 'tap';

import type { BenchRecord, RttRecord, ThroughputRecord } from '../src/bench/records.js';
import { summarize } from '../src/bench/report.js';
import { runBench, type BenchOptions } from '../src/bench/run.js';
import { STATS_MESSAGE } from '../src/protocol/stats.js';
import { TUNNEL_MESSAGES } from '../src/protocol/tunnel-messages.js';
import { assertBuilt, runCli, tempDir } from './helpers/daemon-process.js';
import { startTunnelWorld, tunnelClient } from './helpers/tunnel-fixture.js';
import { frame, parseXmlBody, xmlPlist } from './helpers/usbmuxd-harness.js';

assertBuilt();

const MiB = 1 << 20;
// Userspace tunnels even as root: with a kernel interface the cases also run
// through it (test/tunnel-tun.test.ts checks those rows).
const world = await startTunnelWorld(t, { sims: 1, daemonArgs: ['--tun', 'off'], standalone: { old: ['--product-version', '17.0'] } });
const phone = world.phones[0]!;
const old = world.standalone.old!;

function options(path: string, udid: string, records: BenchRecord[], lines: string[], extra: Partial<BenchOptions> = {}): BenchOptions {
  return {
    address: { kind: 'unix', path },
    udid,
    bytes: 2 * MiB,
    repeats: 2,
    cases: new Set(['up', 'down', 'rtt', 'tunnel-up', 'tunnel-down', 'tunnel-rtt']),
    parallel: [],
    rttCount: 20,
    connectSeconds: 0.3,
    connectConcurrency: 2,
    idleConnections: 10,
    daemonPid: world.daemon.pid,
    emit: (r) => records.push(r),
    log: (line) => lines.push(line),
    ...extra,
  };
}

const describe = (r: BenchRecord) => `${r.kind}:${r.kind === 'throughput' ? r.direction : r.kind === 'rtt' ? r.via : ''}:${'tunnel' in r && r.tunnel ? 'tunnel' : 'plain'}:${r.repeat}`;

t.test('the tunnel cases beside the plain ones, round by round; a tunnel the bench started is stopped', async (t) => {
  const records: BenchRecord[] = [];
  const lines: string[] = [];
  await runBench(options(world.socketPath, phone.udid, records, lines));
  t.same(
    records.map(describe),
    [1, 2].flatMap((n) => ['up', 'down'].map((d) => `throughput:${d}:plain:${n}`).concat(`rtt:echo:plain:${n}`, `throughput:up:tunnel:${n}`, `throughput:down:tunnel:${n}`, `rtt:echo:tunnel:${n}`)),
    'each round: plain up, down, RTT, then the same through the tunnel',
  );
  for (const r of records.filter((x): x is ThroughputRecord => x.kind === 'throughput' && x.tunnel === true)) {
    t.equal(r.bytes, 2 * MiB, `tunnel ${r.direction}: the whole figure through one connection`);
    t.ok(r.mbPerSec > 0 && r.connections === 1 && r.devices === 1 && r.via === 'sim', `tunnel ${r.direction}: ${r.mbPerSec.toFixed(1)} MB/s`);
    t.type(r.cpuSecPerGiB, 'number', 'CPU charged to the daemon');
    t.type(r.jsWakeupsPerGiB, 'number', "tsmuxd's JS wakeups");
  }
  const rtt = records.find((r): r is RttRecord => r.kind === 'rtt' && r.tunnel === true);
  t.ok(rtt && rtt.count === 20 && rtt.p50Ms > 0 && rtt.p50Ms <= rtt.p99Ms, '20 echo round trips through the tunnel');
  t.ok(lines.some((l) => l.startsWith(`tunnel to ${phone.udid}: started`)), 'the bench started the tunnel');
  t.same(await tunnelClient(world.socketPath).listTunnels(), [], 'and stopped it');

  const rows = summarize(records);
  t.same(
    rows.filter((r) => r.name.startsWith('tunnel')).map((r) => r.name),
    ['tunnel: to device, 1 conn', 'tunnel: from device, 1 conn', 'tunnel: 64 B echo RTT', 'tunnel/plain, to device, 1 conn', 'tunnel/plain, from device, 1 conn'],
    'the summary names the tunnel figures and their ratio to plain',
  );
  t.equal(rows.find((r) => r.name === 'tunnel/plain, to device, 1 conn')?.value.n, 2, 'one ratio per round');
});

t.test('a tunnel that was up stays up', async (t) => {
  const client = tunnelClient(world.socketPath);
  await client.startTunnel(phone.udid);
  const lines: string[] = [];
  const records: BenchRecord[] = [];
  await runBench(options(world.socketPath, phone.udid, records, lines, { repeats: 1, cases: new Set(['tunnel-rtt']) }));
  t.same(records.map(describe), ['rtt:echo:tunnel:1']);
  t.ok(lines.some((l) => l.startsWith(`tunnel to ${phone.udid}: already up`)), 'the bench says it found it');
  t.equal((await client.listTunnels()).length, 1, 'still up');
  await client.stopTunnel(phone.udid);
});

t.test('an iOS 17.0 phone: one line, no tunnel records, the plain cases still run', async (t) => {
  const records: BenchRecord[] = [];
  const lines: string[] = [];
  await runBench(options(world.socketPath, old.udid, records, lines, { repeats: 1 }));
  t.same(records.map(describe), ['throughput:up:plain:1', 'throughput:down:plain:1', 'rtt:echo:plain:1']);
  t.same(lines.filter((l) => l.startsWith('tunnel')), [`tunnel cases: skipped (${old.udid} has no CoreDeviceProxy tunnel (iOS 17.4+))`]);
});

t.test('a daemon that is not tsmuxd: one line, no tunnel records', async (t) => {
  // A proxy to tsmuxd that answers Result 1 to what usbmuxd does not know.
  const path = join(tempDir(t, 'tsmuxd-bench-tunnel-'), 'not-tsmuxd.sock');
  const refused = new Set([...TUNNEL_MESSAGES, STATS_MESSAGE]);
  const answered: string[] = [];
  const server = net.createServer((client) => {
    client.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 16 || buf.length < buf.readUInt32LE(0)) return;
      client.off('data', onData);
      const type = String(parseXmlBody(buf.subarray(16, buf.readUInt32LE(0))).MessageType);
      if (refused.has(type)) {
        answered.push(type);
        client.end(frame(1, 8, buf.readUInt32LE(12), Buffer.from(xmlPlist({ MessageType: 'Result', Number: 1 }), 'utf8')));
        return;
      }
      const upstream = net.connect(world.socketPath);
      upstream.on('error', () => client.destroy());
      upstream.write(buf);
      client.pipe(upstream).pipe(client);
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const records: BenchRecord[] = [];
  const lines: string[] = [];
  await runBench(options(path, phone.udid, records, lines, { repeats: 1 }));
  t.same(records.map(describe), ['throughput:up:plain:1', 'throughput:down:plain:1', 'rtt:echo:plain:1'], 'the plain cases through the proxy');
  t.same(lines.filter((l) => l.startsWith('tunnel')), ['tunnel cases: skipped (TunnelList: the daemon has no tunnels (it answered Result 1: not tsmuxd?))']);
  t.ok(answered.includes('TunnelList') && !answered.includes('TunnelStart'), 'asked TunnelList, never started one');
  t.equal(records.find((r): r is ThroughputRecord => r.kind === 'throughput')?.jsWakeups, null, 'no JS wakeups from a daemon without stats');
});

t.test('tsmuxd bench --cases tunnel-up,tunnel-down,tunnel-rtt', async (t) => {
  const run = await runCli(
    ['bench', '-S', world.socketPath, '--udid', phone.udid, '--json', '--cases', 'tunnel-up,tunnel-down,tunnel-rtt', '--bytes', '1M', '--repeats', '1', '--rtt-count', '10'],
    { timeoutMs: 60_000 },
  );
  t.equal(run.code, 0, `exit 0 (${run.stderr.trim()})`);
  // The first line says which daemon was measured (src/bench/daemon-identity.ts).
  const lines = run.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l) as BenchRecord);
  t.same(lines.map(describe), ['throughput:up:tunnel:1', 'throughput:down:tunnel:1', 'rtt:echo:tunnel:1'], 'one JSON line per tunnel figure');
  const text = await runCli(['bench', '-S', world.socketPath, '--udid', old.udid, '--cases', 'up,tunnel-up', '--bytes', '1M', '--repeats', '1'], { timeoutMs: 60_000 });
  t.equal(text.code, 0, 'an old phone is no error');
  t.match(text.stderr, /bench: tunnel cases: skipped \(.* has no CoreDeviceProxy tunnel \(iOS 17\.4\+\)\)/);
  t.match(text.stdout, /to device, 1 conn/, 'and the plain figure is in the table');
});
