#!/usr/bin/env node
// npm run bench:hostile [-- --quick] [-- --bytes 256M --repeats 3 --sockets 10000]:
// the bars of issue 11's hostile peers, as figures. A tsmuxd daemon and two
// simulated phones run as processes; a victim client uploads to one phone's
// sink and downloads from its source at once, first with no attack, then
// while each attack (bench/hostile/attacks.ts, in a process of its own) runs.
// Prints the victim's throughput against the baseline (target: at least 0.8),
// the daemon's RSS and fds before, at the peak and after, and the CPU the
// attacker and the daemon used. Writes bench/results/hostile-latest.json (+ a
// dated copy; --quick writes hostile-quick.json).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { cpuSeconds, rssBytes } from '../../src/bench/proc.js';
import { download, SINK_PORT, SOURCE_PORT, upload } from '../../src/bench/sim-services.js';
import { UsbmuxClient } from '../../src/client/index.js';
import { parseSize } from '../../src/util/size.js';
import { packageRoot } from '../../src/native/addon.js';
import { machineFacts } from '../cable/machine.js';
import { startDaemon, startSim, stopAll } from '../cable/processes.js';
import { ATTACKS, type AttackName } from './attacks.js';
import { printHostileReport, TARGET_RATIO, type CaseResult } from './report.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    bytes: { type: 'string' },
    repeats: { type: 'string' },
    sockets: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
  },
});
const quick = values.quick ?? false;
const bytes = values.bytes ? parseSize(values.bytes) : quick ? 16 << 20 : 256 << 20;
const repeats = values.repeats ? Number(values.repeats) : quick ? 1 : 3;
const sockets = values.sockets ? Number(values.sockets) : quick ? 1000 : 10_000;
const only = values.only ? (values.only.split(',') as AttackName[]) : [...ATTACKS];

const MiB = 1 << 20;
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-hostile-'));
const children: ChildProcess[] = [];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

let daemonPid = 0;
let socketPath = '';
let victimUdid = '';
const fds = () => readdirSync(`/proc/${daemonPid}/fd`).length;
const rssMiB = () => rssBytes(daemonPid) / MiB;

/** One victim round: upload and download at once on two connections of the healthy phone. */
async function victimRound(): Promise<{ up: number; down: number }> {
  const client = new UsbmuxClient({ address: { kind: 'unix', path: socketPath }, timeoutMs: 30_000 });
  const [up, down] = await Promise.all([client.connect(victimUdid, SINK_PORT), client.connect(victimUdid, SOURCE_PORT)]);
  const timed = async (run: () => Promise<void>) => {
    const started = performance.now();
    await run();
    return bytes / 1e6 / ((performance.now() - started) / 1000);
  };
  try {
    const [u, d] = await Promise.all([timed(() => upload(up, bytes)), timed(() => download(down, bytes))]);
    return { up: u, down: d };
  } finally {
    up.destroy();
    down.destroy();
  }
}

/** The victim's medians over `repeats` rounds, with the peak RSS and fds and CPU while they ran. */
async function measureVictim(attackerPid?: number) {
  let rssPeak = rssMiB();
  let fdsPeak = fds();
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssMiB());
    fdsPeak = Math.max(fdsPeak, fds());
  }, 100);
  const cpu0 = { daemon: cpuSeconds(daemonPid), attacker: attackerPid ? cpuSeconds(attackerPid) : 0 };
  const started = performance.now();
  const rounds: Array<{ up: number; down: number }> = [];
  try {
    for (let i = 0; i < repeats; i++) rounds.push(await victimRound());
  } finally {
    clearInterval(sampler);
  }
  const wall = (performance.now() - started) / 1000;
  return {
    up: median(rounds.map((r) => r.up)),
    down: median(rounds.map((r) => r.down)),
    rssPeak: Math.max(rssPeak, rssMiB()),
    fdsPeak: Math.max(fdsPeak, fds()),
    daemonCpuPct: ((cpuSeconds(daemonPid) - cpu0.daemon) / wall) * 100,
    attackerCpuPct: attackerPid ? ((cpuSeconds(attackerPid) - cpu0.attacker) / wall) * 100 : null,
  };
}

/** Starts an attacker process and waits until its attack is in full swing. */
async function startAttacker(name: AttackName, cable: string) {
  const script = join(packageRoot, 'dist', 'bench', 'hostile', 'attacker.js');
  const child = spawn(process.execPath, [script, name, socketPath, cable, victimUdid, String(sockets)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! });
  const next = async (what: string, ms: number) => {
    const exited = once(child, 'exit').then(([code]) => Promise.reject(new Error(`the attacker exited (${code}) before ${what}`)));
    const timeout = sleep(ms).then(() => Promise.reject(new Error(`timed out after ${ms} ms waiting for ${what}`)));
    const [line] = (await Promise.race([once(lines, 'line'), exited, timeout])) as [string];
    return JSON.parse(line) as { ready?: boolean; error?: string; stats?: Record<string, number> };
  };
  const ready = await next('the attack to start', 180_000);
  if (!ready.ready) throw new Error(`the attacker failed: ${ready.error}`);
  return {
    child,
    async stop() {
      child.stdin!.write('stop\n');
      const { stats } = await next('its report', 60_000);
      await once(child, 'exit');
      return stats ?? {};
    },
  };
}

async function settle(fdsBefore: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (fds() > fdsBefore + 2 && Date.now() < deadline) await sleep(100);
  await sleep(500);
}

try {
  const daemon = await startDaemon(dir);
  children.push(daemon.child);
  daemonPid = daemon.child.pid!;
  socketPath = daemon.socket;
  const victim = await startSim(daemon.cable, join(dir, 'sim-victim'));
  const bystander = await startSim(daemon.cable, join(dir, 'sim-bystander'));
  children.push(victim.child, bystander.child);
  victimUdid = victim.udid;
  const client = new UsbmuxClient({ address: { kind: 'unix', path: socketPath } });
  for (let i = 0; (await client.listDevices()).length < 2; i++) {
    if (i > 300) throw new Error('the phones were never listed');
    await sleep(100);
  }
  log(`daemon pid ${daemonPid}, ${bytes / MiB} MiB per direction, ${repeats} round(s), ${sockets} half-open sockets`);
  await victimRound(); // warm-up

  const results: CaseResult[] = [];
  const fds0 = fds();
  const rss0 = rssMiB();
  log('baseline: no attack');
  const b = await measureVictim();
  results.push({ name: 'baseline', upMBps: b.up, downMBps: b.down, ratio: null, rssBeforeMiB: rss0, rssPeakMiB: b.rssPeak, rssAfterMiB: rssMiB(), fdsBefore: fds0, fdsPeak: b.fdsPeak, fdsAfter: fds(), attackerCpuPct: null, daemonCpuPct: b.daemonCpuPct });

  for (const name of only) {
    log(`attack: ${name}`);
    const fdsBefore = fds();
    const rssBefore = rssMiB();
    const row: CaseResult = { name, upMBps: NaN, downMBps: NaN, ratio: null, rssBeforeMiB: rssBefore, rssPeakMiB: rssBefore, rssAfterMiB: NaN, fdsBefore, fdsPeak: fdsBefore, fdsAfter: NaN, attackerCpuPct: null, daemonCpuPct: NaN };
    try {
      const attacker = await startAttacker(name, daemon.cable);
      const m = await measureVictim(attacker.child.pid).finally(async () => {
        row.attackerStats = await attacker.stop().catch((err: Error) => ({ stopFailed: 1, message: err.message.length }));
      });
      Object.assign(row, {
        upMBps: m.up,
        downMBps: m.down,
        ratio: Math.min(m.up / b.up, m.down / b.down),
        rssPeakMiB: m.rssPeak,
        fdsPeak: m.fdsPeak,
        attackerCpuPct: m.attackerCpuPct,
        daemonCpuPct: m.daemonCpuPct,
      });
    } catch (err) {
      row.error = (err as Error).message;
    }
    await settle(fdsBefore);
    row.rssAfterMiB = rssMiB();
    row.fdsAfter = fds();
    if (daemon.child.exitCode !== null) row.error = `the daemon exited (${daemon.child.exitCode})`;
    results.push(row);
    if (row.error) log(`${name}: ${row.error}`);
  }

  // The baseline again: how far the machine itself drifted during the run.
  log('baseline again: no attack');
  const fdsEnd = fds();
  const rssEnd = rssMiB();
  const e = await measureVictim();
  results.push({ name: 'baseline (end)', upMBps: e.up, downMBps: e.down, ratio: Math.min(e.up / b.up, e.down / b.down), rssBeforeMiB: rssEnd, rssPeakMiB: e.rssPeak, rssAfterMiB: rssMiB(), fdsBefore: fdsEnd, fdsPeak: e.fdsPeak, fdsAfter: fds(), attackerCpuPct: null, daemonCpuPct: e.daemonCpuPct });

  const lines = printHostileReport(results, { bytes, repeats });
  const outDir = join(packageRoot, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const facts = machineFacts();
  const missed = results.slice(1, -1).filter((r) => r.ratio === null || r.ratio < TARGET_RATIO).map((r) => r.name);
  const json = `${JSON.stringify({ date: new Date().toISOString(), quick, bytesPerDirection: bytes, repeats, sockets, targetRatio: TARGET_RATIO, missed, machine: facts, results, table: lines }, null, 2)}\n`;
  const out = values.out ?? join(outDir, quick ? 'hostile-quick.json' : 'hostile-latest.json');
  writeFileSync(out, json);
  if (!quick && !values.out) writeFileSync(join(outDir, `hostile-${new Date().toISOString().slice(0, 10)}.json`), json);
  log(`written to ${out}`);
} finally {
  await stopAll(children);
  rmSync(dir, { recursive: true, force: true });
}
