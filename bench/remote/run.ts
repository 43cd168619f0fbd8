#!/usr/bin/env node
// npm run bench:remote [-- --bytes 256M --runs 3 --rtt 2000]: what a remote
// Connect (docs/remote.md) costs beside a local one to the same phone. A
// serving daemon A with a simulated phone (its own process) listens for
// remote usbmux on 127.0.0.2 over mutual TLS; a consuming daemon C adds A.
// The same transfers then run (a) through A's own socket, a local Connect,
// and (b) through C's, a remote Connect: TLS in both daemons' data planes,
// TCP over loopback between them. BYTES to the phone's sink and from its
// source (hashed at both ends), 64-byte round trips through its echo, and
// CPU seconds per GiB of A and of C, from /proc. Prints the figures and
// writes bench/results/remote-latest.json.
import { execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';

import { cpuSeconds } from '../../src/bench/proc.js';
import { ECHO_PORT, percentile, pingPong, SINK_PORT, SOURCE_PORT } from '../../src/bench/sim-services.js';
import { downloadVerified, uploadVerified } from '../../src/bench/verified.js';
import { UsbmuxClient } from '../../src/client/index.js';
import { packageRoot } from '../../src/native/native-error.js';
import { parseSize } from '../../src/util/size.js';
import { machineFacts } from '../cable/machine.js';
import { startDaemon, startSim, stopAll, waitListed } from '../cable/processes.js';
import { makeRemoteCerts } from './certs.js';

const { values } = parseArgs({ options: { bytes: { type: 'string' }, runs: { type: 'string' }, rtt: { type: 'string' } } });
const MiB = 1 << 20;
const GiB = 1 << 30;
const total = values.bytes ? parseSize(values.bytes) : 256 * MiB;
const runs = Number(values.runs ?? 3);
const rttCount = Number(values.rtt ?? 2000);
if (!(runs >= 1 && runs <= 20)) throw new Error('--runs is 1 to 20');
const log = (line: string) => process.stderr.write(`remote bench: ${line}\n`);
const SERVE_HOST = '127.0.0.2';

async function freePortOn(host: string): Promise<number> {
  const s = net.createServer().listen(0, host);
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

interface PathFigures {
  upMBs: number[];
  downMBs: number[];
  /** CPU s/GiB of the serving daemon (A) and the consuming one (C; local: none). */
  upCpuA: number[];
  upCpuC: number[];
  downCpuA: number[];
  downCpuC: number[];
  rttMedianMs: number;
  rttP99Ms: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fixed = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(', ');

async function measure(client: UsbmuxClient, udid: string, pidA: number, pidC: number | undefined): Promise<PathFigures> {
  const device = await waitListed(client, udid);
  const f: PathFigures = { upMBs: [], downMBs: [], upCpuA: [], upCpuC: [], downCpuA: [], downCpuC: [], rttMedianMs: 0, rttP99Ms: 0 };
  for (let i = 0; i < runs; i++) {
    for (const direction of ['up', 'down'] as const) {
      const s: Socket = await client.connect(device.deviceId, direction === 'up' ? SINK_PORT : SOURCE_PORT);
      const a0 = cpuSeconds(pidA);
      const c0 = pidC ? cpuSeconds(pidC) : 0;
      const r = direction === 'up' ? await uploadVerified(s, total, 1) : await downloadVerified(s, total);
      const cpuA = (cpuSeconds(pidA) - a0) / (r.bytes / GiB);
      const cpuC = pidC ? (cpuSeconds(pidC) - c0) / (r.bytes / GiB) : 0;
      s.destroy();
      if (r.local !== r.remote || r.bytes !== total) throw new Error(`${direction}: the digests differ (${r.local} here, ${r.remote} at the phone)`);
      const rate = r.bytes / 1e3 / r.ms;
      if (direction === 'up') f.upMBs.push(rate), f.upCpuA.push(cpuA), f.upCpuC.push(cpuC);
      else f.downMBs.push(rate), f.downCpuA.push(cpuA), f.downCpuC.push(cpuC);
    }
  }
  const echo: Socket = await client.connect(device.deviceId, ECHO_PORT);
  const times = (await pingPong(echo, rttCount, 64)).sort((a, b) => a - b);
  echo.destroy();
  f.rttMedianMs = percentile(times, 50);
  f.rttP99Ms = percentile(times, 99);
  return f;
}

const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-remote-bench-'));
const children: ChildProcess[] = [];
try {
  const certs = await makeRemoteCerts(dir, ['serving', 'consuming']);
  const port = await freePortOn(SERVE_HOST);
  const tls = (who: 'serving' | 'consuming') => ['--remote-cert', certs.hosts[who]!.cert, '--remote-key', certs.hosts[who]!.key, '--remote-ca', certs.ca];
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'c'));
  const a = await startDaemon(join(dir, 'a'), ['--remote-listen', `${SERVE_HOST}:${port}`, '--no-advertise', ...tls('serving')]);
  children.push(a.child);
  const c = await startDaemon(join(dir, 'c'), tls('consuming'));
  children.push(c.child);
  const sim = await startSim(a.cable, join(dir, 'sim'));
  children.push(sim.child);
  const cli = join(packageRoot, 'dist', 'src', 'cli', 'main.js');
  await promisify(execFile)(process.execPath, [cli, 'remote', 'add', `${SERVE_HOST}:${port}`, '--socket', c.socket]);
  const local = new UsbmuxClient({ address: { kind: 'unix', path: a.socket }, timeoutMs: 30_000 });
  const remote = new UsbmuxClient({ address: { kind: 'unix', path: c.socket }, timeoutMs: 30_000 });
  const pidA = a.child.pid!;
  const pidC = c.child.pid!;
  const machine = machineFacts();
  log(`A (serving) pid ${pidA}, C (consuming) pid ${pidC}, sim pid ${sim.child.pid}; ${total / MiB} MiB per transfer, ${runs} run(s), ${rttCount} round trips; ${JSON.stringify(machine)}`);
  const figures = { local: await measure(local, sim.udid, pidA, undefined), remote: await measure(remote, sim.udid, pidA, pidC) };
  console.log('path    dir   MB/s (each run)        A CPU s/GiB        C CPU s/GiB');
  for (const [name, f] of Object.entries(figures)) {
    console.log(`${name.padEnd(7)} up    ${fixed(f.upMBs, 0).padEnd(22)} ${fixed(f.upCpuA, 2).padEnd(18)} ${name === 'remote' ? fixed(f.upCpuC, 2) : '-'}`);
    console.log(`${name.padEnd(7)} down  ${fixed(f.downMBs, 0).padEnd(22)} ${fixed(f.downCpuA, 2).padEnd(18)} ${name === 'remote' ? fixed(f.downCpuC, 2) : '-'}`);
  }
  for (const [name, f] of Object.entries(figures)) console.log(`${name.padEnd(7)} 64-byte RTT: median ${f.rttMedianMs.toFixed(3)} ms, p99 ${f.rttP99Ms.toFixed(3)} ms`);
  const ratioUp = median(figures.remote.upMBs) / median(figures.local.upMBs);
  const ratioDown = median(figures.remote.downMBs) / median(figures.local.downMBs);
  console.log(`remote / local throughput (medians): up ${ratioUp.toFixed(2)}, down ${ratioDown.toFixed(2)} (goal >= 0.5)`);
  console.log('every transfer arrived intact (SHA-256 equal at both ends)');
  mkdirSync(join(packageRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(packageRoot, 'bench', 'results', 'remote-latest.json'),
    `${JSON.stringify({ date: new Date().toISOString(), bytes: total, runs, rttCount, machine, figures, ratio: { up: ratioUp, down: ratioDown } }, null, 2)}\n`,
  );
} finally {
  await stopAll(children);
  rmSync(dir, { recursive: true, force: true });
}
