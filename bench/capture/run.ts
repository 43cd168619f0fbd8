#!/usr/bin/env node
// npm run bench:capture [-- --bytes 1G --rounds 2]: what a capture costs.
// A tsmuxd daemon and a simulated phone in their own processes; BYTES sent
// to the phone's sink through one Connect (hashed at both ends), with no
// capture and with `tsmuxd capture -w FILE` running, in alternating rounds.
// Prints each run's throughput, the daemon's CPU, the capture's size and the
// records its ring dropped (from the statistics at the end of the file),
// then the cost: the throughput and CPU per GiB with a capture against without.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { connectRequest, muxConnect } from '../../src/bench/connect-rate.js';
import { cpuSeconds } from '../../src/bench/proc.js';
import { SINK_PORT } from '../../src/bench/sim-services.js';
import { uploadVerified } from '../../src/bench/verified.js';
import { packageRoot } from '../../src/native/addon.js';
import { parseSize } from '../../src/util/size.js';
import { machineFacts } from '../cable/machine.js';
import { startDaemonWithPhone, stopAll } from '../cable/processes.js';

const { values } = parseArgs({ options: { bytes: { type: 'string' }, rounds: { type: 'string' }, quick: { type: 'boolean' } } });
const GiB = 2 ** 30;
const bytes = values.bytes ? parseSize(values.bytes) : values.quick ? 256 << 20 : GiB;
const rounds = Number(values.rounds ?? 2);
const CLI = join(packageRoot, 'dist', 'src', 'cli', 'main.js');
const log = (line: string) => process.stderr.write(`bench:capture: ${line}\n`);

interface Run {
  mode: 'off' | 'capture';
  mbPerSecond: number;
  daemonCpuPerGiB: number;
  captureBytes?: number;
  dropped?: number;
  captureSummary?: string;
}

const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-bench-capture-'));
const children: ChildProcess[] = [];
const runs: Run[] = [];
try {
  const { daemon, device } = await startDaemonWithPhone(dir, children);
  const address = { kind: 'unix' as const, path: daemon.socket };
  const { deviceId } = device;
  const pid = daemon.child.pid!;

  const once1 = async (mode: Run['mode']): Promise<Run> => {
    const file = join(dir, 'capture.pcapng');
    let capture: ReturnType<typeof spawn> | undefined;
    let stderr = '';
    if (mode === 'capture') {
      capture = spawn(process.execPath, [CLI, 'capture', '-w', file, '-S', daemon.socket], { stdio: ['ignore', 'ignore', 'pipe'] });
      capture.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      for (let i = 0; i < 200 && !(statSync(file, { throwIfNoEntry: false })?.size); i++) await new Promise((r) => setTimeout(r, 25));
    }
    const socket = await muxConnect(address, connectRequest(deviceId, SINK_PORT), true);
    const cpuBefore = cpuSeconds(pid);
    const result = await uploadVerified(socket, bytes, 0);
    const cpu = cpuSeconds(pid) - cpuBefore;
    socket.destroy();
    if (result.local !== result.remote) throw new Error('the sink saw other bytes than were sent');
    const run: Run = { mode, mbPerSecond: bytes / 1e3 / result.ms, daemonCpuPerGiB: (cpu * GiB) / bytes };
    if (capture) {
      const exited = once(capture, 'exit');
      capture.kill('SIGINT');
      await exited;
      run.captureSummary = stderr.trim();
      run.captureBytes = statSync(file).size;
      const dropped = /; (\d+) dropped/.exec(stderr);
      run.dropped = dropped ? Number(dropped[1]) : undefined;
      rmSync(file, { force: true });
    }
    return run;
  };

  log(`daemon pid ${pid}; ${bytes / 2 ** 20} MiB to the sink per run, ${rounds} rounds of: no capture, tsmuxd capture -w FILE`);
  for (let r = 0; r < rounds; r++) {
    for (const mode of ['off', 'capture'] as const) {
      const run = await once1(mode);
      runs.push(run);
      const extra = run.mode === 'capture' ? `, capture ${(run.captureBytes! / 2 ** 20).toFixed(0)} MiB, ${run.dropped} dropped (${run.captureSummary})` : '';
      console.log(`round ${r + 1}  ${mode.padEnd(7)}  ${run.mbPerSecond.toFixed(0).padStart(5)} MB/s  daemon CPU ${run.daemonCpuPerGiB.toFixed(2)} s/GiB${extra}`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const of = (mode: Run['mode'], f: (r: Run) => number) => median(runs.filter((r) => r.mode === mode).map(f));
  const off = of('off', (r) => r.mbPerSecond);
  const on = of('capture', (r) => r.mbPerSecond);
  const cpuOff = of('off', (r) => r.daemonCpuPerGiB);
  const cpuOn = of('capture', (r) => r.daemonCpuPerGiB);
  const drops = runs.filter((r) => r.mode === 'capture').map((r) => r.dropped);
  console.log(`median: ${off.toFixed(0)} MB/s without a capture, ${on.toFixed(0)} MB/s with one (${((1 - on / off) * 100).toFixed(0)} % less); daemon CPU ${cpuOff.toFixed(2)} -> ${cpuOn.toFixed(2)} s/GiB; dropped per run: ${drops.join(', ')}`);
  if (!values.quick) {
    const outDir = join(packageRoot, 'bench', 'results');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'capture-latest.json'), `${JSON.stringify({ date: new Date().toISOString(), machine: machineFacts(), bytes, runs }, null, 2)}\n`);
  }
} finally {
  await stopAll(children);
  rmSync(dir, { recursive: true, force: true });
}
