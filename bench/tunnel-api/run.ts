#!/usr/bin/env node
// npm run bench:tunnel-api [-- --bytes 256M --runs 3]: what the tunneld
// API's /connect websocket costs against the path it is built on. A tsmuxd
// daemon (tunneld API on a free loopback port) and a simulated phone in
// their own processes, a CoreDeviceProxy tunnel, then BYTES to the phone's
// sink and from its source through (a) the tunnel's preamble listener
// directly, as go-ios clients use it (no byte enters JS), and (b) a
// websocket on /connect, which opens that same listener and moves every
// byte through the daemon's JS both ways. Every transfer is hashed at both
// ends. It prints MB/s and the daemon's CPU seconds per GiB for each.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { WebSocket } from 'ws';

import { cpuSeconds } from '../../src/bench/proc.js';
import { SINK_PORT, SOURCE_PORT } from '../../src/bench/sim-services.js';
import { downloadVerified, uploadVerified, type VerifiedResult } from '../../src/bench/verified.js';
import { wsDownloadVerified, wsUploadVerified } from '../../src/bench/ws-verified.js';
import { encodeTunnelPreamble } from '../../src/protocol/tunnel-preamble.js';
import type { TunnelDescription } from '../../src/protocol/tunnel-messages.js';
import { parseSize } from '../../src/util/size.js';
import { machineFacts } from '../cable/machine.js';
import { pairPhone, startDaemonWithPhone, stopAll } from '../cable/processes.js';

const { values } = parseArgs({ options: { bytes: { type: 'string' }, runs: { type: 'string' } } });
const MiB = 1 << 20;
const total = values.bytes ? parseSize(values.bytes) : 256 * MiB;
const runs = Number(values.runs ?? 3);
if (!(runs >= 1 && runs <= 20)) throw new Error('--runs is 1 to 20');
const log = (line: string) => process.stderr.write(`tunnel-api bench: ${line}\n`);

async function freeLoopbackPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

type Path = 'preamble' | 'websocket';
type Direction = 'up' | 'down';

async function transfer(path: Path, direction: Direction, t: TunnelDescription, api: string, udid: string): Promise<VerifiedResult> {
  const port = direction === 'up' ? SINK_PORT : SOURCE_PORT;
  if (path === 'preamble') {
    const s = net.connect(t.preamblePort, t.preambleHost);
    await once(s, 'connect');
    s.write(encodeTunnelPreamble(t.serverAddress, port));
    try {
      return direction === 'up' ? await uploadVerified(s, total, 1) : await downloadVerified(s, total);
    } finally {
      s.destroy();
    }
  }
  const ws = new WebSocket(`ws://${api}/connect?udid=${udid}&port=${port}`, { perMessageDeflate: false });
  await once(ws, 'open');
  try {
    return direction === 'up' ? await wsUploadVerified(ws, total, 1) : await wsDownloadVerified(ws, total);
  } finally {
    ws.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-tunnel-api-bench-'));
const children: ChildProcess[] = [];
let failed = false;
try {
  const api = `127.0.0.1:${await freeLoopbackPort()}`;
  const { daemon, sim, client } = await startDaemonWithPhone(dir, children, { daemonArgs: ['--tunneld-api', api], clientTimeoutMs: 30_000 });
  // The daemon runs without preflight (-p): a tunnel needs the pair record.
  await pairPhone(daemon.socket, sim.udid);
  const tunnel = await client.startTunnel(sim.udid);
  const pid = daemon.child.pid!;
  log(`daemon pid ${pid}, tunneld API on ${api}; ${total / MiB} MiB per transfer, ${runs} run(s) each; ${JSON.stringify(machineFacts())}`);
  console.log('path       direction  MB/s (each run)          daemon CPU s/GiB (each run)');
  for (const path of ['preamble', 'websocket'] as const) {
    for (const direction of ['up', 'down'] as const) {
      const rates: string[] = [];
      const cpu: string[] = [];
      for (let i = 0; i < runs; i++) {
        const cpuBefore = cpuSeconds(pid);
        const r = await transfer(path, direction, tunnel, api, sim.udid);
        if (r.local !== r.remote || r.bytes !== total) {
          failed = true;
          log(`${path} ${direction}: the digests differ (${r.local} here, ${r.remote} at the phone)`);
        }
        rates.push((r.bytes / 1e3 / r.ms).toFixed(0));
        cpu.push(((cpuSeconds(pid) - cpuBefore) / (r.bytes / 2 ** 30)).toFixed(2));
      }
      console.log(`${path.padEnd(9)}  ${direction.padEnd(9)}  ${rates.join(', ').padEnd(24)} ${cpu.join(', ')}`);
    }
  }
  console.log(failed ? 'a transfer arrived corrupted' : 'every transfer arrived intact (SHA-256 equal at both ends)');
} finally {
  await stopAll(children);
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
