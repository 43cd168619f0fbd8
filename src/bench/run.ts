// `tsmuxd bench`: measures a usbmuxd-compatible daemon (Apple's, libimobiledevice's
// or ours) from the client side. With a simulated phone it drives the sim's
// sink, source and echo services; with a real phone, which has none of them,
// it falls back to AFC file transfers and lockdown round trips (phone.ts).
// The daemon's CPU comes from /proc (Linux), ps (macOS) or Get-Process
// (Windows) when its pid is known (given, the owner of the Unix socket, or
// the platform's usbmuxd by name: daemon-identity.ts), and its identity
// (name, version, BUID) leads the results; JS wakeups when it is tsmuxd. The
// tunnel cases run the same transfers and round trips through the phone's
// CoreDeviceProxy tunnel (tsmuxd's TunnelConnect, iOS 17.4+) instead of a
// plain mux Connect: the socket opener is the only difference.
import type net from 'node:net';

import { UsbmuxClient, type UsbmuxDevice } from '../client/index.js';
import type { SocketAddress } from '../protocol/address.js';
import { TunnelResult } from '../protocol/tunnel-messages.js';
import { connectEchoCycle, connectRequest, muxConnect, timedCycles } from './connect-rate.js';
import { benchPhone } from './phone.js';
import { describeDaemon, findDaemonPid, identifyDaemon } from './daemon-identity.js';
import { cpuSince, daemonMeter, processProbe, type DaemonMeter, type ProcessProbe } from './daemon-process.js';
import { MiB, perGiB, type BenchRecord, type ConnectRateRecord, type DaemonRecord, type RttRecord, type ThroughputRecord } from './records.js';
import { kernelTunnelPath, marked, muxPath, tunnelPath, type PortPath } from './port-paths.js';
import { download, ECHO_PORT, percentile, pingPong, SINK_PORT, SOURCE_PORT, upload } from './sim-services.js';

export const TUNNEL_CASES = ['tunnel-up', 'tunnel-down', 'tunnel-rtt'] as const;
export const BENCH_CASES = ['up', 'down', 'parallel', 'devices', 'rtt', 'connect', 'idle', ...TUNNEL_CASES] as const;
export type BenchCase = (typeof BENCH_CASES)[number];

export interface BenchOptions {
  address: SocketAddress;
  /** Measure this phone (and only it, in the per-device cases). */
  udid?: string;
  /** Bytes per throughput measurement, spread over its connections. */
  bytes: number;
  repeats: number;
  cases: ReadonlySet<BenchCase>;
  /** Connection counts of the `parallel` case. */
  parallel: number[];
  /** How many phones at once in the `devices` case (default: all listed). */
  deviceCounts?: number[];
  rttCount: number;
  connectSeconds: number;
  /** Cycles per Connect figure, shared by the concurrent loops; replaces connectSeconds when set. */
  connectCount?: number;
  /** Each Connect cycle sends one byte to the sim's echo and reads it back before closing. */
  connectEcho?: boolean;
  connectConcurrency: number;
  idleConnections: number;
  daemonPid?: number;
  emit(record: BenchRecord): void;
  log(line: string): void;
  /** Which daemon is measured, once known (before the first figure). */
  onDaemon?(record: DaemonRecord): void;
  /** Where the bench runs (default: this process's platform); decides the probe and the name lookup. */
  platform?: NodeJS.Platform;
  probe?: ProcessProbe;
}

export interface BenchContext {
  options: BenchOptions;
  devices: UsbmuxDevice[];
  daemonPid: number | undefined;
  jsWakeups: (() => Promise<number>) | undefined;
  /** How to read the daemon (runBench sets it; without it, /proc for daemonPid). */
  meter?: DaemonMeter;
}

/** A context made without runBench (the cable bench's) reads its daemonPid from /proc. */
function meterOf(ctx: BenchContext): DaemonMeter | undefined {
  if (ctx.meter || ctx.daemonPid === undefined) return ctx.meter;
  return daemonMeter(processProbe('linux'), ctx.daemonPid);
}

/** Measures; resolves with which daemon it measured. */
export async function runBench(options: BenchOptions): Promise<DaemonRecord> {
  const usbmux = new UsbmuxClient({ address: options.address, timeoutMs: 10_000, progName: 'tsmuxd-bench' });
  const listed = await usbmux.listDevices();
  const devices = options.udid ? listed.filter((d) => d.serialNumber === options.udid) : listed;
  if (devices.length === 0) throw new Error(options.udid ? `no device with UDID ${options.udid}` : 'no device attached');
  const platform = options.platform ?? process.platform;
  const probe = options.probe ?? processProbe(platform);
  const found = findDaemonPid(options.address, platform, probe, options.daemonPid);
  const daemonPid = found.pid;
  options.log(
    `daemon ${daemonPid === undefined ? `pid unknown (${found.from}; no CPU figures; pass --daemon-pid)` : `pid ${daemonPid} (${found.from})`}, ` +
      `${devices.length} device(s): ${devices.map((d) => d.serialNumber).join(', ')}`,
  );
  const meter = daemonPid === undefined ? undefined : daemonMeter(probe, daemonPid);
  if (meter && !meter.cpuReadable) {
    options.log(`daemon pid ${daemonPid}: its CPU time cannot be read here (${probe.cpuFrom}): the CPU columns stay empty`);
  }
  const jsWakeups = await wakeupCounter(options.address);
  const daemon = await identifyDaemon({
    address: options.address,
    platform,
    probe,
    found,
    isTsmuxd: jsWakeups !== undefined,
    cpuReadable: meter?.cpuReadable ?? false,
  });
  options.log(`daemon: ${describeDaemon(daemon)}`);
  options.onDaemon?.(daemon);
  const ctx: BenchContext = { options, devices, daemonPid, jsWakeups, meter };
  if (await hasSimServices(options.address, devices[0])) await benchSim(ctx);
  else {
    options.log('the phone has no sink/source/echo services (a real phone): measuring AFC and lockdown instead');
    if (TUNNEL_CASES.some((c) => options.cases.has(c))) options.log('tunnel cases: skipped (they need the sim\'s sink, source and echo inside the tunnel)');
    await benchPhone(ctx);
  }
  return daemon;
}

/**
 * tsmuxd answers its stats request; usbmuxd never answers an unknown one,
 * hence the short timeout of the probe. The readings around each figure get
 * the usual one: a daemon busy moving data (four phones under TCG) may take
 * longer than the probe's 1.5 s, and that must not end the run.
 */
async function wakeupCounter(address: SocketAddress): Promise<(() => Promise<number>) | undefined> {
  const probe = new UsbmuxClient({ address, timeoutMs: 1500, progName: 'tsmuxd-bench' });
  const client = new UsbmuxClient({ address, timeoutMs: 10_000, progName: 'tsmuxd-bench' });
  const reading = (c: UsbmuxClient) => async () => Number((await c.stats()).engine.jsWakeups ?? NaN);
  try {
    const n = await reading(probe)();
    return Number.isFinite(n) ? reading(client) : undefined;
  } catch {
    return undefined;
  }
}

async function hasSimServices(address: SocketAddress, device: UsbmuxDevice): Promise<boolean> {
  try {
    await muxConnect(address, connectRequest(device.deviceId, SINK_PORT), false);
    return true;
  } catch (err) {
    if ((err as { result?: number }).result === 3) return false;
    throw err;
  }
}

async function benchSim(ctx: BenchContext): Promise<void> {
  const { options, devices } = ctx;
  const first = [devices[0]];
  const mux = muxPath(options.address);
  const tunnel = TUNNEL_CASES.some((c) => options.cases.has(c)) ? await openTunnel(ctx) : undefined;
  try {
    for (let repeat = 1; repeat <= options.repeats; repeat++) {
      if (options.cases.has('up')) options.emit(await simThroughput(ctx, mux, 'up', first, 1, repeat));
      if (options.cases.has('down')) options.emit(await simThroughput(ctx, mux, 'down', first, 1, repeat));
      if (options.cases.has('parallel')) {
        for (const n of options.parallel) {
          options.emit(await simThroughput(ctx, mux, 'up', first, n, repeat));
          options.emit(await simThroughput(ctx, mux, 'down', first, n, repeat));
        }
      }
      if (options.cases.has('devices')) {
        for (const count of options.deviceCounts ?? (devices.length > 1 ? [devices.length] : [])) {
          if (count > devices.length) {
            options.log(`devices: ${count} asked for, ${devices.length} listed; skipped`);
            continue;
          }
          options.emit(await simThroughput(ctx, mux, 'up', devices.slice(0, count), 1, repeat));
          options.emit(await simThroughput(ctx, mux, 'down', devices.slice(0, count), 1, repeat));
        }
      }
      if (options.cases.has('rtt')) options.emit(await echoRtt(ctx, mux, repeat));
      if (options.cases.has('connect')) {
        const request = connectRequest(devices[0].deviceId, ECHO_PORT);
        options.emit(await connectRate(ctx, request, options.connectConcurrency, repeat, options.connectEcho ?? false));
      }
      if (tunnel) {
        if (options.cases.has('tunnel-up')) options.emit(await simThroughput(ctx, tunnel.path, 'up', first, 1, repeat));
        if (options.cases.has('tunnel-down')) options.emit(await simThroughput(ctx, tunnel.path, 'down', first, 1, repeat));
        if (options.cases.has('tunnel-rtt')) options.emit(await echoRtt(ctx, tunnel.path, repeat));
        if (tunnel.kernel) {
          if (options.cases.has('tunnel-up')) options.emit(await simThroughput(ctx, tunnel.kernel, 'up', first, 1, repeat));
          if (options.cases.has('tunnel-down')) options.emit(await simThroughput(ctx, tunnel.kernel, 'down', first, 1, repeat));
          if (options.cases.has('tunnel-rtt')) options.emit(await echoRtt(ctx, tunnel.kernel, repeat));
        }
      }
    }
  } finally {
    await tunnel?.release();
  }
  if (options.cases.has('idle')) await idleConnections(ctx);
}

/**
 * The first phone's CoreDeviceProxy tunnel for the tunnel cases: the one it
 * has, or one started here (and stopped by release()). Undefined, after one
 * line saying why, when the daemon is not tsmuxd, the phone has no
 * CoreDeviceProxy (below iOS 17.4) or no measuring services inside it.
 */
async function openTunnel(ctx: BenchContext): Promise<{ path: PortPath; kernel?: PortPath; release(): Promise<void> } | undefined> {
  const { options } = ctx;
  const device = ctx.devices[0];
  const skip = (why: string) => {
    options.log(`tunnel cases: skipped (${why})`);
    return undefined;
  };
  // usbmuxd answers an unknown request Result 1, or never: hence the short timeout.
  const probe = new UsbmuxClient({ address: options.address, timeoutMs: 1500, progName: 'tsmuxd-bench' });
  let had: boolean;
  try {
    had = (await probe.listTunnels()).some((t) => t.udid === device.serialNumber);
  } catch (err) {
    const message = (err as Error).message;
    const code = (err as { code?: string }).code;
    return skip(code === 'ERR_TUNNEL_UNSUPPORTED' || code === 'ERR_TUNNEL_DENIED' ? message : `TunnelList: ${message}; not tsmuxd?`);
  }
  const client = new UsbmuxClient({ address: options.address, timeoutMs: 10_000, progName: 'tsmuxd-bench' });
  let kernel: PortPath | undefined;
  try {
    const t = await client.startTunnel(device.serialNumber);
    if (t.mode === 'tun') kernel = kernelTunnelPath(t.serverAddress);
    options.log(`tunnel to ${device.serialNumber}: ${had ? 'already up' : 'started'}, MTU ${t.mtu}, send MSS ${t.sendMss}, device [${t.serverAddress}]`);
  } catch (err) {
    if ((err as { result?: number }).result === TunnelResult.EOPNOTSUPP) return skip(`${device.serialNumber} has no CoreDeviceProxy tunnel (iOS 17.4+)`);
    throw err;
  }
  const release = async () => {
    if (!had) await client.stopTunnel(device.serialNumber);
  };
  try {
    (await client.tunnelConnect(device.deviceId, SINK_PORT)).destroy();
  } catch (err) {
    await release();
    if ((err as { result?: number }).result === TunnelResult.CONNREFUSED) return skip(`${device.serialNumber} has no sink (port ${SINK_PORT}) inside its tunnel`);
    throw err;
  }
  return { path: tunnelPath(client), kernel, release };
}

/**
 * Connect cycles per second, each cycle's time, and the daemon's CPU per
 * cycle; `echo`: each cycle moves one byte each way through an echo port.
 */
export async function connectRate(ctx: BenchContext, request: Buffer, concurrency: number, repeat: number, echo = false): Promise<ConnectRateRecord> {
  const { address, connectCount, connectSeconds } = ctx.options;
  const cycle = echo ? () => connectEchoCycle(address, request) : () => muxConnect(address, request, false);
  const meter = meterOf(ctx);
  const before = meter?.cpuSeconds() ?? null;
  const rate = await timedCycles(cycle, connectCount ? { count: connectCount } : { seconds: connectSeconds }, concurrency);
  const cpu = cpuSince(meter, before);
  return {
    kind: 'connect-rate',
    ...rate,
    daemonCpuUsPerConnect: cpu === null ? null : (cpu * 1e6) / rate.cycles,
    ...(echo ? { echoBytes: 1 } : {}),
    repeat,
  };
}

export interface TransferShape {
  direction: 'up' | 'down';
  connections: number;
  devices: number;
  bytes: number;
  via: 'sim' | 'afc';
  repeat: number;
}

/** Times `run` (which moves `shape.bytes`), with the daemon's CPU and JS wakeups over it. */
export async function measureThroughput(ctx: BenchContext, shape: TransferShape, run: () => Promise<void>): Promise<ThroughputRecord> {
  const wakeBefore = ctx.jsWakeups ? await ctx.jsWakeups() : undefined;
  const meter = meterOf(ctx);
  const cpuBefore = meter?.cpuSeconds() ?? null;
  const start = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const daemonCpuSec = cpuSince(meter, cpuBefore);
  const jsWakeups = wakeBefore === undefined ? null : (await ctx.jsWakeups!()) - wakeBefore;
  return {
    kind: 'throughput',
    ...shape,
    seconds,
    mibPerSec: shape.bytes / MiB / seconds,
    mbPerSec: shape.bytes / 1e6 / seconds,
    daemonCpuSec,
    cpuSecPerGiB: perGiB(daemonCpuSec, shape.bytes),
    jsWakeups,
    jsWakeupsPerGiB: perGiB(jsWakeups, shape.bytes),
  };
}

async function simThroughput(
  ctx: BenchContext,
  path: PortPath,
  direction: 'up' | 'down',
  devices: UsbmuxDevice[],
  connections: number,
  repeat: number,
): Promise<ThroughputRecord> {
  const port = direction === 'up' ? SINK_PORT : SOURCE_PORT;
  const sockets = await Promise.all(devices.flatMap((d) => Array.from({ length: connections }, () => path.open(d, port))));
  return marked(path, await transferOver(ctx, sockets, direction, devices.length, repeat));
}

/**
 * Moves the options' bytes, split evenly, over sockets already open to sinks
 * (up) or sources (down), then closes them. Every connection is open before
 * the clock starts: the transfers alone are timed.
 */
export async function transferOver(
  ctx: BenchContext,
  sockets: net.Socket[],
  direction: 'up' | 'down',
  devices: number,
  repeat: number,
): Promise<ThroughputRecord> {
  const each = Math.max(1, Math.floor(ctx.options.bytes / sockets.length));
  const transfer = direction === 'up' ? upload : download;
  const connections = sockets.length / devices;
  const shape = { direction, connections, devices, bytes: each * sockets.length, via: 'sim' as const, repeat };
  try {
    return await measureThroughput(ctx, shape, () => Promise.all(sockets.map((s) => transfer(s, each))).then(() => undefined));
  } finally {
    for (const s of sockets) s.destroy();
  }
}

async function echoRtt(ctx: BenchContext, path: PortPath, repeat: number): Promise<RttRecord> {
  const socket = await path.open(ctx.devices[0], ECHO_PORT);
  return marked(path, await rttOver(socket, ctx.options.rttCount, repeat));
}

/** 64-byte round trips over an open echo socket, after a warm-up; closes it. */
export async function rttOver(socket: net.Socket, count: number, repeat: number): Promise<RttRecord> {
  try {
    await pingPong(socket, Math.min(50, count));
    const times = (await pingPong(socket, count)).sort((a, b) => a - b);
    return { kind: 'rtt', via: 'echo', payloadBytes: 64, count: times.length, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), maxMs: times[times.length - 1], repeat };
  } finally {
    socket.destroy();
  }
}

/** Daemon RSS per idle connection: N Connects to the echo port, held open. */
async function idleConnections(ctx: BenchContext): Promise<void> {
  const { options, daemonPid } = ctx;
  const meter = meterOf(ctx);
  if (daemonPid === undefined || !meter) {
    options.log('idle connections: skipped (the daemon pid is unknown)');
    return;
  }
  const rssBeforeBytes = meter.rssBytes();
  if (rssBeforeBytes === null) {
    options.log(`idle connections: skipped (the memory of pid ${daemonPid} cannot be read here)`);
    return;
  }
  const request = connectRequest(ctx.devices[0].deviceId, ECHO_PORT);
  const sockets: net.Socket[] = [];
  const start = process.hrtime.bigint();
  const BATCH = 64;
  try {
    while (sockets.length < options.idleConnections) {
      const n = Math.min(BATCH, options.idleConnections - sockets.length);
      sockets.push(...(await Promise.all(Array.from({ length: n }, () => muxConnect(options.address, request, true)))));
    }
    const openSeconds = Number(process.hrtime.bigint() - start) / 1e9;
    await new Promise((r) => setTimeout(r, 500));
    const rssAfterBytes = meter.rssBytes();
    if (rssAfterBytes === null) {
      options.log(`idle connections: skipped (pid ${daemonPid}'s memory could not be read after opening them)`);
      return;
    }
    options.emit({
      kind: 'idle',
      connections: sockets.length,
      rssBeforeBytes,
      rssAfterBytes,
      rssBytesPerConnection: (rssAfterBytes - rssBeforeBytes) / sockets.length,
      openSeconds,
      repeat: 1,
    });
  } finally {
    for (const s of sockets) s.destroy();
  }
}
