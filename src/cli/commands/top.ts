// `tsmuxd top`: live per-device and per-connection traffic from the daemon's
// stats request: bytes, rates (the difference of two snapshots over the
// daemon's own clock), windows, in-flight and queued bytes, RTT. Redrawn in
// place on a terminal; --once for one snapshot; --json for JSON lines.
import { UsbmuxError } from '../../client/channel.js';
import type { ConnectionStats, DaemonStats, DeviceStats } from '../../client/stats.js';
import type { UsbmuxClient } from '../../client/usbmux-client.js';
import {
  clientFor,
  COMMON_HELP,
  COMMON_OPTIONS,
  daemonAddress,
  formatBytes,
  formatRate,
  formatSocketAddress,
  parseCommandArgs,
  table,
  untilSignal,
  UsageError,
} from './common.js';

const HELP = `usage: tsmuxd top [--once] [--interval SECONDS] [--json] [--socket ADDR]

Shows every device and connection the daemon carries: bytes each way, rates,
the peer's window (SNDWND), ours (RCVWND), bytes in flight and queued for the
client, and the round-trip time from a data packet to its ACK. Refreshed
every second on a terminal (q or Ctrl-C quits). Needs tsmuxd: other usbmuxd
daemons have no stats request.

  -1, --once          one snapshot, then exit (no rates: they need two)
  -i, --interval S    seconds between snapshots (default 1)
${COMMON_HELP}`;

export type Rated<T> = T & { rateToDevice: number | null; rateFromDevice: number | null };

export interface TopFrame {
  time: string;
  /** The daemon's monotonic clock. */
  timeMs: number;
  /** Since the previous snapshot; null for the first. */
  intervalMs: number | null;
  engine: DaemonStats['engine'];
  devices: Array<Rated<DeviceStats>>;
  connections: Array<Rated<ConnectionStats>>;
}

type Traffic = { bytesToDevice: number; bytesFromDevice: number };

function rated<T extends Traffic>(now: T, before: Traffic | undefined, seconds: number | null): Rated<T> {
  if (!before || !seconds || seconds <= 0) return { ...now, rateToDevice: null, rateFromDevice: null };
  return {
    ...now,
    rateToDevice: Math.max(0, (now.bytesToDevice - before.bytesToDevice) / seconds),
    rateFromDevice: Math.max(0, (now.bytesFromDevice - before.bytesFromDevice) / seconds),
  };
}

/** Joins a snapshot to the one before it: rates per device handle and connection id. */
export function frameFrom(now: DaemonStats, before: DaemonStats | null): TopFrame {
  const intervalMs = before ? now.timeMs - before.timeMs : null;
  const seconds = intervalMs === null ? null : intervalMs / 1000;
  const devices = new Map(before?.devices.map((d) => [d.handle, d]) ?? []);
  const conns = new Map(before?.connections.map((c) => [c.conn, c]) ?? []);
  return {
    time: new Date().toISOString(),
    timeMs: now.timeMs,
    intervalMs,
    engine: now.engine,
    devices: [...now.devices].sort((a, b) => a.handle - b.handle).map((d) => rated(d, devices.get(d.handle), seconds)),
    connections: [...now.connections]
      .sort((a, b) => a.handle - b.handle || a.conn - b.conn)
      .map((c) => rated(c, conns.get(c.conn), seconds)),
  };
}

const ms = (v: number | undefined) => (v === undefined ? '-' : v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(0)} ms`);
const age = (v: number) => (v < 60_000 ? `${(v / 1000).toFixed(0)} s` : `${(v / 60_000).toFixed(0)} min`);

/** The text screen for one frame, at most `maxLines` lines if given. */
export function renderFrame(frame: TopFrame, address: string, maxLines?: number): string[] {
  const head = `tsmuxd top  ${address}  ${frame.time.slice(11, 19)}  ${frame.devices.length} device(s), ${frame.connections.length} connection(s)`;
  const devices = table(
    ['DEV', 'UDID', 'STATE', 'CONNS', 'TO DEVICE', 'RATE', 'FROM DEVICE', 'RATE', 'USB QUEUE'],
    frame.devices.map((d) => [
      d.deviceId === undefined ? `h${d.handle}` : String(d.deviceId),
      d.udid ?? '-',
      d.congested ? `${d.state}*` : d.state,
      String(d.connections),
      formatBytes(d.bytesToDevice),
      formatRate(d.rateToDevice),
      formatBytes(d.bytesFromDevice),
      formatRate(d.rateFromDevice),
      formatBytes(d.queuedOut),
    ]),
  );
  const conns = table(
    ['CONN', 'DEV', 'PORT', 'SRC', 'STATE', 'TO DEVICE', 'RATE', 'FROM DEVICE', 'RATE', 'SNDWND', 'RCVWND', 'INFLIGHT', 'QUEUED', 'RTT', 'AGE', 'CLIENT'],
    frame.connections.map((c) => [
      String(c.conn),
      c.deviceId === undefined ? `h${c.handle}` : String(c.deviceId),
      String(c.devicePort),
      String(c.sourcePort),
      c.state,
      formatBytes(c.bytesToDevice),
      formatRate(c.rateToDevice),
      formatBytes(c.bytesFromDevice),
      formatRate(c.rateFromDevice),
      formatBytes(c.sendWindow),
      formatBytes(c.receiveWindow),
      formatBytes(c.inFlight),
      formatBytes(c.queued),
      ms(c.rttMs),
      age(c.ageMs),
      c.progName ? `${c.progName}${c.client !== undefined ? `#${c.client}` : ''}` : '-',
    ]),
  );
  const lines = [head, '', ...devices, '', ...(frame.connections.length ? conns : ['no connections'])];
  if (maxLines !== undefined && lines.length > maxLines) {
    const cut = Math.max(1, maxLines - 1);
    return [...lines.slice(0, cut), `... ${lines.length - cut} more line(s)`];
  }
  return lines;
}

async function fetchStats(client: UsbmuxClient, address: string): Promise<DaemonStats> {
  try {
    return await client.stats();
  } catch (err) {
    if (err instanceof UsbmuxError && err.code === 'ERR_STATS_UNSUPPORTED') {
      throw new Error(
        `the daemon at ${address} does not support stats: it answered Result 1 (unknown request) to tsmuxdStats, so it is not tsmuxd`,
      );
    }
    throw err;
  }
}

function sleep(msDelay: number, stop: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([new Promise<void>((r) => (timer = setTimeout(r, msDelay))), stop.then(() => {})]).finally(() =>
    clearTimeout(timer),
  );
}

/** q or Ctrl-C on a terminal stdin (raw mode keeps Ctrl-C from being a signal). */
function keyQuit(): { done: Promise<void>; release(): void } {
  const stdin = process.stdin;
  if (!stdin.isTTY) return { done: new Promise(() => {}), release: () => {} };
  let onData: (b: Buffer) => void = () => {};
  const done = new Promise<void>((resolve) => {
    onData = (b: Buffer) => {
      if (b.includes(0x71) || b.includes(0x03)) resolve();
    };
  });
  stdin.setRawMode(true);
  stdin.on('data', onData);
  stdin.resume();
  return {
    done,
    release: () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
    },
  };
}

export async function runTop(args: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args,
    options: { ...COMMON_OPTIONS, once: { type: 'boolean', short: '1' }, interval: { type: 'string', short: 'i' } },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const interval = values.interval === undefined ? 1 : Number(values.interval);
  if (!Number.isFinite(interval) || interval < 0.1) throw new UsageError('--interval needs seconds, at least 0.1');
  const address = daemonAddress(values.socket);
  const shown = formatSocketAddress(address);
  const client = clientFor(address);
  const json = values.json ?? false;
  const live = process.stdout.isTTY === true && !json && !values.once;

  if (values.once) {
    const frame = frameFrom(await fetchStats(client, shown), null);
    process.stdout.write(json ? `${JSON.stringify(frame)}\n` : `${renderFrame(frame, shown).join('\n')}\n`);
    return 0;
  }

  const signal = untilSignal();
  const keys = live ? keyQuit() : { done: new Promise<void>(() => {}), release: () => {} };
  const stop = Promise.race([signal.done, keys.done]);
  let stopped = false;
  void stop.then(() => (stopped = true));
  if (live) process.stdout.write('\x1b[?25l\x1b[H\x1b[2J');
  let before: DaemonStats | null = null;
  try {
    while (!stopped) {
      const now = await fetchStats(client, shown);
      const frame = frameFrom(now, before);
      before = now;
      if (json) {
        process.stdout.write(`${JSON.stringify(frame)}\n`);
      } else if (live) {
        const lines = renderFrame(frame, shown, (process.stdout.rows ?? 40) - 1);
        process.stdout.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\x1b[J`);
      } else {
        process.stdout.write(`${renderFrame(frame, shown).join('\n')}\n\n`);
      }
      await sleep(interval * 1000, stop);
    }
  } finally {
    signal.cancel();
    keys.release();
    if (live) process.stdout.write('\x1b[?25h\n');
  }
  return 0;
}
