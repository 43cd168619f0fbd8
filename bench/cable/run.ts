#!/usr/bin/env node
// npm run bench [-- --quick] [-- --bytes 1G --repeats 3]: the virtual-cable
// benchmark, no VM. A tsmuxd daemon and simulated phones, each in its own
// process; the `tsmuxd bench` client measures through the daemon, and the
// same transfers run directly against the sim's TCP services (loopback) and
// through a plain SOCK_SEQPACKET relay with no mux (the cable's ceiling), in
// the same run; and through the first phone's CoreDeviceProxy tunnel beside
// the plain mux connection to it. Writes bench/results/cable-latest.json (+ a
// dated copy).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { cycleRate, directConnect } from '../../src/bench/connect-rate.js';
import type { BenchRecord } from '../../src/bench/records.js';
import { rttOver, runBench, transferOver, type BenchContext, type BenchOptions } from '../../src/bench/run.js';
import { ECHO_PORT, SINK_PORT, SOURCE_PORT } from '../../src/bench/sim-services.js';
import { UsbmuxClient } from '../../src/client/index.js';
import { parseSize } from '../../src/util/size.js';
import { packageRoot } from '../../src/native/addon.js';
import { loadTracker, machineFacts } from './machine.js';
import { buildRelay, pairPhone, startDaemon, startRelay, startSim, stopAll, type Sim } from './processes.js';
import { printCableReport, type PathRecord } from './report.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    bytes: { type: 'string' },
    repeats: { type: 'string' },
    devices: { type: 'string' },
    idle: { type: 'string' },
    out: { type: 'string' },
  },
});
const quick = values.quick ?? false;
const bytes = values.bytes ? parseSize(values.bytes) : quick ? 32 << 20 : 1 << 30;
const repeats = values.repeats ? Number(values.repeats) : quick ? 1 : 3;
const deviceCounts = (values.devices ?? (quick ? '1,2' : '1,2,4,16')).split(',').map(Number);
const idle = values.idle ? Number(values.idle) : quick ? 500 : 10_000;

const records: PathRecord[] = [];
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-bench-'));
const load = loadTracker();
const children = [];

async function waitListed(socket: string, count: number): Promise<void> {
  const client = new UsbmuxClient({ address: { kind: 'unix', path: socket } });
  const deadline = Date.now() + 30_000;
  while ((await client.listDevices()).length < count) {
    if (Date.now() > deadline) throw new Error(`fewer than ${count} phones listed after 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function tcp(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

/** Throughput and RTT to the phone's services without the daemon: directly, or through the relay. */
async function reference(path: 'direct' | 'relay', ports: Record<number, number>, options: BenchOptions, repeat: number) {
  const ctx: BenchContext = { options, devices: [], daemonPid: undefined, jsWakeups: undefined };
  for (const direction of ['up', 'down'] as const) {
    for (const connections of [1, ...options.parallel]) {
      const sockets = await Promise.all(Array.from({ length: connections }, () => tcp(ports[direction === 'up' ? SINK_PORT : SOURCE_PORT])));
      records.push({ path, ...(await transferOver(ctx, sockets, direction, 1, repeat)) });
    }
  }
  records.push({ path, ...(await rttOver(await tcp(ports[ECHO_PORT]), options.rttCount, repeat)) });
}

try {
  const daemon = await startDaemon(dir);
  children.push(daemon.child);
  const sims: Sim[] = [];
  for (let i = 0; i < Math.max(...deviceCounts); i++) {
    const sim = await startSim(daemon.cable, join(dir, `sim-${i}`));
    children.push(sim.child);
    sims.push(sim);
  }
  await waitListed(daemon.socket, sims.length);
  // The tunnel needs a pair record (Trust makes the phone re-enumerate):
  // `tsmuxd pair` runs while the relay is built.
  const pairing = performance.now();
  const paired = pairPhone(daemon.socket, sims[0].udid).then(() => performance.now() - pairing);
  paired.catch(() => {});
  const relayBinary = buildRelay(dir);
  const relayPorts: Record<number, number> = {};
  for (const port of [SINK_PORT, SOURCE_PORT, ECHO_PORT]) {
    const relay = await startRelay(relayBinary, sims[0].services[port]);
    children.push(relay.child);
    relayPorts[port] = relay.port;
  }
  const pairedMs = await paired;
  await waitListed(daemon.socket, sims.length);
  log(`daemon pid ${daemon.child.pid}, ${sims.length} phone(s), ${bytes / (1 << 20)} MiB per figure, ${repeats} repeat(s)`);
  const base: BenchOptions = {
    address: { kind: 'unix', path: daemon.socket },
    udid: sims[0].udid,
    bytes,
    repeats: 1,
    cases: new Set(['up', 'down', 'parallel', 'rtt', 'connect', 'tunnel-up', 'tunnel-down', 'tunnel-rtt']),
    parallel: [4, 16],
    rttCount: quick ? 200 : 2000,
    connectSeconds: quick ? 1 : 3,
    connectConcurrency: 8,
    idleConnections: idle,
    daemonPid: daemon.child.pid,
    emit: (r: BenchRecord) => records.push({ path: 'tsmuxd', ...r }),
    log,
  };
  // The tunnel is up before the first round (its start is not a figure) and
  // stays up across rounds: runBench uses the one the phone has.
  const tunnelClient = new UsbmuxClient({ address: base.address, timeoutMs: 10_000, progName: 'tsmuxd-bench' });
  const starting = performance.now();
  const tunnel = await tunnelClient.startTunnel(sims[0].udid);
  log(`tunnel to ${sims[0].udid}: MTU ${tunnel.mtu}, send MSS ${tunnel.sendMss} (paired in ${(pairedMs / 1000).toFixed(1)} s, started in ${((performance.now() - starting) / 1000).toFixed(1)} s)`);
  for (let repeat = 1; repeat <= repeats; repeat++) {
    log(`round ${repeat} (load average ${load.sample().toFixed(2)}): through tsmuxd, plain mux and tunnel`);
    await runBench({ ...base, emit: (r) => records.push({ path: 'tsmuxd', ...r, repeat }) });
    log(`round ${repeat}: direct loopback TCP`);
    await reference('direct', sims[0].services, base, repeat);
    log(`round ${repeat}: SOCK_SEQPACKET relay`);
    await reference('relay', relayPorts, base, repeat);
    const direct = await cycleRate(() => directConnect(sims[0].services[ECHO_PORT]), base.connectSeconds, base.connectConcurrency);
    records.push({ path: 'direct', kind: 'connect-rate', ...direct, daemonCpuUsPerConnect: null, repeat });
    log(`round ${repeat}: ${deviceCounts.join(', ')} phones at once`);
    await runBench({ ...base, udid: undefined, cases: new Set(['devices']), deviceCounts, emit: (r) => records.push({ path: 'tsmuxd', ...r, repeat }) });
  }
  await tunnelClient.stopTunnel(sims[0].udid);
  log(`${idle} idle connections`);
  await runBench({ ...base, cases: new Set(['idle']) });

  const facts = { ...machineFacts(), load: load.facts() };
  const summary = printCableReport(records, { bytes, repeats, facts });
  const outDir = join(packageRoot, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const result = `${JSON.stringify({ date: new Date().toISOString(), quick, bytesPerFigure: bytes, repeats, machine: facts, summary, records }, null, 2)}\n`;
  const out = values.out ?? join(outDir, quick ? 'cable-quick.json' : 'cable-latest.json');
  writeFileSync(out, result);
  if (!quick && !values.out) writeFileSync(join(outDir, `cable-${new Date().toISOString().slice(0, 10)}.json`), result);
  log(`written to ${out}`);
} finally {
  await stopAll(children);
  rmSync(dir, { recursive: true, force: true });
}
