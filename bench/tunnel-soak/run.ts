#!/usr/bin/env node
// npm run soak:tunnel [-- --minutes 30 --path kernel|userspace]: a tunnel
// under load for a long time, not in CI (issue 22). A tsmuxd daemon and a
// simulated phone in their own processes, the phone's CoreDeviceProxy
// tunnel, then two loops until the time is up: 64 MiB to the phone's sink
// and 64 MiB from its source, each on a fresh tunnel TCP connection, every
// byte hashed at both ends. `kernel` (as root, the default there) goes
// through the tunnel's TUN interface with plain sockets; `userspace` through
// TunnelConnect and the daemon's own stack. Every minute one line: the
// bytes moved, the rate, and the daemon's RSS and fd count; at the end
// whether both stayed flat. Exits 1 on a digest mismatch or growth.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { rssBytes } from '../../src/bench/proc.js';
import { SINK_PORT, SOURCE_PORT } from '../../src/bench/sim-services.js';
import { downloadVerified, uploadVerified } from '../../src/bench/verified.js';
import type { TunnelDescription } from '../../src/protocol/tunnel-messages.js';
import { pairPhone, startDaemonWithPhone, stopAll } from '../cable/processes.js';

const MiB = 1 << 20;
const TRANSFER = 64 * MiB;
/** RSS may grow this much over the run after the first minutes' warm-up, fds not at all (a few in flight). */
const RSS_SLACK = 8 * MiB;
const FD_SLACK = 4;

const { values } = parseArgs({ options: { minutes: { type: 'string' }, path: { type: 'string' } } });
const minutes = Number(values.minutes ?? 30);
if (!(minutes >= 1 && minutes <= 24 * 60)) throw new Error('--minutes is 1 to 1440');
const log = (line: string) => process.stdout.write(`soak: ${line}\n`);

const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-soak-'));
const children: ChildProcess[] = [];
let failed = false;
try {
  const { daemon, sim, client } = await startDaemonWithPhone(dir, children, { daemonArgs: ['--tunnels', 'off'], clientTimeoutMs: 30_000 });
  await pairPhone(daemon.socket, sim.udid);
  const tunnel: TunnelDescription = await client.startTunnel(sim.udid);
  const path = values.path ?? (tunnel.mode === 'tun' ? 'kernel' : 'userspace');
  if (path === 'kernel' && tunnel.mode !== 'tun') throw new Error('--path kernel needs a tunnel interface: run as root');
  log(`tunnel [${tunnel.address}] <-> [${tunnel.serverAddress}], ${tunnel.mode}${tunnel.interfaceName ? ` ${tunnel.interfaceName}` : ''}; path ${path}; ${minutes} min`);

  const open = (port: number): Promise<net.Socket> =>
    path === 'kernel'
      ? new Promise((resolve, reject) => {
          const s = net.connect({ host: tunnel.serverAddress, port });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        })
      : client.tunnelConnect(sim.udid, port);

  const pid = daemon.child.pid!;
  const fds = () => readdirSync(`/proc/${pid}/fd`).length;
  const end = Date.now() + minutes * 60_000;
  let moved = 0;
  let transfers = 0;
  let mismatches = 0;
  const loop = async (up: boolean) => {
    for (let i = 0; Date.now() < end; i++) {
      const socket = await open(up ? SINK_PORT : SOURCE_PORT);
      const r = up ? await uploadVerified(socket, TRANSFER, i + 1, (n) => (moved += n)) : await downloadVerified(socket, TRANSFER, (n) => (moved += n));
      socket.destroy();
      transfers++;
      if (r.local !== r.remote) mismatches++;
    }
  };
  const samples: Array<{ rss: number; fds: number }> = [];
  let last = 0;
  const started = Date.now();
  const sampler = setInterval(() => {
    const minute = Math.round((Date.now() - started) / 60_000);
    const sample = { rss: rssBytes(pid), fds: fds() };
    samples.push(sample);
    log(`minute ${String(minute).padStart(3)}: ${(moved / 2 ** 30).toFixed(1)} GiB, ${((moved - last) / 1e6 / 60).toFixed(1)} MB/s, ${transfers} transfers, daemon RSS ${(sample.rss / MiB).toFixed(1)} MiB, fds ${sample.fds}`);
    last = moved;
  }, 60_000);
  await Promise.all([loop(true), loop(false)]);
  clearInterval(sampler);

  // The first two minutes warm up (allocator arenas, lwIP's pools); after them nothing may grow.
  const settled = samples.slice(Math.min(2, samples.length - 1));
  const rssGrowth = settled.length ? settled[settled.length - 1]!.rss - Math.min(...settled.map((s) => s.rss)) : 0;
  const fdRange = settled.length ? Math.max(...settled.map((s) => s.fds)) - Math.min(...settled.map((s) => s.fds)) : 0;
  const flat = rssGrowth <= RSS_SLACK && fdRange <= FD_SLACK;
  log(`${transfers} transfers of 64 MiB, ${(moved / 2 ** 30).toFixed(1)} GiB, ${mismatches} digest mismatches`);
  log(`after warm-up: RSS grew ${(rssGrowth / MiB).toFixed(1)} MiB (allowed ${RSS_SLACK / MiB}), fds ranged over ${fdRange} (allowed ${FD_SLACK}): ${flat ? 'flat' : 'NOT flat'}`);
  failed = mismatches > 0 || !flat;
} finally {
  await stopAll(children);
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
