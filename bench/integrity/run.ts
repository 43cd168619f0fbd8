#!/usr/bin/env node
// npm run integrity [-- --bytes 10G --conns 8 --tunnel]: a long integrity run
// over the virtual cable. A tsmuxd daemon and a simulated phone in their own
// processes; CONNS connections through the daemon's socket at once, half
// to the phone's sink and half from its source, every byte hashed at both
// ends. With --tunnel they go through the phone's CoreDeviceProxy tunnel
// (TunnelConnect) instead of plain mux connections (--tunnel --bytes 256M is
// the tunnel's long run, kept out of npm test). It prints each connection's
// digests, the daemon's RSS and fd count
// over the run, and "0 bytes lost or corrupted" or exits 1.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { connectRequest, muxConnect } from '../../src/bench/connect-rate.js';
import { rssBytes } from '../../src/bench/proc.js';
import { SINK_PORT, SOURCE_PORT } from '../../src/bench/sim-services.js';
import { downloadVerified, uploadVerified, type VerifiedResult } from '../../src/bench/verified.js';
import { parseSize } from '../../src/util/size.js';
import { packageRoot } from '../../src/native/addon.js';
import { machineFacts } from '../cable/machine.js';
import { pairPhone, startDaemonWithPhone, stopAll } from '../cable/processes.js';

const { values } = parseArgs({
  options: {
    bytes: { type: 'string' },
    conns: { type: 'string' },
    quick: { type: 'boolean' },
    tunnel: { type: 'boolean' },
  },
});
const MiB = 1 << 20;
const total = values.bytes ? parseSize(values.bytes) : values.quick ? 256 * MiB : 10 * 1024 * MiB;
const conns = Number(values.conns ?? 8);
if (!(conns >= 1 && conns <= 64)) throw new Error('--conns is 1 to 64');
const each = Math.floor(total / conns / MiB) * MiB;
if (each < MiB) throw new Error('--bytes must give every connection at least 1 MiB');
const log = (line: string) => process.stderr.write(`integrity: ${line}\n`);

const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-integrity-'));
const children: ChildProcess[] = [];
let failed = false;
try {
  const { daemon, sim, client, device } = await startDaemonWithPhone(dir, children);
  const address = { kind: 'unix' as const, path: daemon.socket };
  const { deviceId } = device;

  if (values.tunnel) {
    // A tunnel needs the pair record (the daemon runs without preflight).
    await pairPhone(daemon.socket, sim.udid);
    const t = await client.startTunnel(sim.udid);
    log(`tunnel up: [${t.address}] <-> [${t.serverAddress}], MTU ${t.mtu}, send MSS ${t.sendMss}`);
  }
  const open = async (port: number) =>
    values.tunnel ? client.tunnelConnect(sim.udid, port) : muxConnect(address, connectRequest(deviceId, port), true);

  const pid = daemon.child.pid!;
  const fds = () => readdirSync(`/proc/${pid}/fd`).length;
  const before = { rss: rssBytes(pid), fds: fds() };
  let peakRss = before.rss;
  let moved = 0;
  const started = performance.now();
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssBytes(pid));
  }, 250);
  const reporter = setInterval(() => {
    const s = (performance.now() - started) / 1000;
    log(`${(moved / 2 ** 30).toFixed(2)} of ${((each * conns) / 2 ** 30).toFixed(2)} GiB in ${s.toFixed(0)} s (${(moved / 1e6 / s).toFixed(0)} MB/s), daemon RSS ${(rssBytes(pid) / MiB).toFixed(1)} MiB`);
  }, 10_000);
  log(`daemon pid ${pid}; ${conns} ${values.tunnel ? 'tunnel ' : ''}connections x ${each / MiB} MiB (half up to the sink, half down from the source)`);

  const runs = Array.from({ length: conns }, async (_, i) => {
    const direction = i % 2 === 0 ? 'up' : 'down';
    const socket = await open(direction === 'up' ? SINK_PORT : SOURCE_PORT);
    const progress = (n: number) => (moved += n);
    const result = direction === 'up' ? await uploadVerified(socket, each, i, progress) : await downloadVerified(socket, each, progress);
    socket.destroy();
    return { direction, ...result };
  });
  const results: (VerifiedResult & { direction: string })[] = await Promise.all(runs);
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  clearInterval(reporter);
  await new Promise((r) => setTimeout(r, 500));
  const after = { rss: rssBytes(pid), fds: fds() };

  console.log('conn  direction  MiB      MB/s    client SHA-256 (first 16)  phone SHA-256 (first 16)  match');
  let bad = 0;
  results.forEach((r, i) => {
    const ok = r.local === r.remote && r.bytes === each;
    if (!ok) bad += each;
    console.log(`${String(i).padStart(4)}  ${r.direction.padEnd(9)}  ${String(r.bytes / MiB).padEnd(7)}  ${(r.bytes / 1e3 / r.ms).toFixed(0).padStart(6)}  ${r.local.slice(0, 16)}           ${r.remote.slice(0, 16)}          ${ok ? 'yes' : 'NO'}`);
  });
  const bytes = results.reduce((s, r) => s + r.bytes, 0);
  console.log(`${(bytes / 2 ** 30).toFixed(2)} GiB over ${conns} connections in ${seconds.toFixed(1)} s (${(bytes / 1e6 / seconds).toFixed(0)} MB/s aggregate)`);
  console.log(`daemon RSS ${(before.rss / MiB).toFixed(1)} MiB before, ${(peakRss / MiB).toFixed(1)} MiB peak, ${(after.rss / MiB).toFixed(1)} MiB after; fds ${before.fds} before, ${after.fds} after`);
  console.log(bad === 0 ? '0 bytes lost or corrupted' : `${bad} bytes on connections whose digests differ`);
  failed = bad !== 0;

  const outDir = join(packageRoot, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const record = { date: new Date().toISOString(), machine: machineFacts(), tunnel: values.tunnel === true, conns, bytesPerConnection: each, seconds, before, peakRss, after, results };
  const name = values.tunnel ? 'integrity-tunnel-latest.json' : 'integrity-latest.json';
  if (!values.quick) writeFileSync(join(outDir, name), `${JSON.stringify(record, null, 2)}\n`);
} finally {
  await stopAll(children);
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
