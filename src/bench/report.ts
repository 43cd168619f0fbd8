// Turns benchmark records into what people read: min/median/max per figure
// over the repeats, a table, and an ASCII bar chart of throughput.
import { table } from '../util/text-table.js';
import type { BenchRecord, ConnectRateRecord, RttRecord, ThroughputRecord } from './records.js';

export interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

export function spread(values: number[]): Spread {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return { min: NaN, median: NaN, max: NaN, n: 0 };
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { min: s[0], median, max: s[s.length - 1], n: s.length };
}

function tunnelLabel(r: { tunnel?: true; kernel?: true }): string {
  if (!r.tunnel) return '';
  return r.kernel ? 'tunnel (kernel TUN): ' : 'tunnel: ';
}

/** A name for the thing a record measures, the same across repeats. */
export function figureName(r: BenchRecord): string {
  switch (r.kind) {
    case 'throughput': {
      const where = r.devices > 1 ? `${r.devices} devices` : r.connections > 1 ? `${r.connections} conns` : '1 conn';
      return `${tunnelLabel(r)}${r.via === 'afc' ? 'AFC ' : ''}${r.direction === 'up' ? 'to device' : 'from device'}, ${where}`;
    }
    case 'rtt':
      return `${tunnelLabel(r)}${r.via === 'echo' ? `${r.payloadBytes} B echo RTT` : 'lockdown QueryType RTT'}`;
    case 'connect-rate':
      return `Connect${r.echoBytes ? ` + ${r.echoBytes} B echo` : ''} rate (${r.concurrency} concurrent)`;
    case 'idle':
      return `${r.connections} idle connections`;
  }
}

export interface SummaryRow {
  name: string;
  unit: string;
  value: Spread;
  /** CPU s/GiB for throughput; p99 for RTT. */
  second?: { unit: string; value: Spread };
  third?: { unit: string; value: Spread };
}

/** The issue's goals for the CoreDeviceProxy tunnel (issue 19), reported, never asserted. */
export const TUNNEL_GOALS = {
  /** Tunnel MB/s over the plain mux connection's, each way, in the same round. */
  minThroughputRatio: 0.5,
  /** tsmuxd's native-to-JS callbacks per GiB through the tunnel. */
  maxJsWakeupsPerGiB: 100,
} as const;

/** One round's tunnel figures beside the plain mux connection's, to the same phone. */
export interface TunnelRound {
  repeat: number;
  up: { tunnel?: ThroughputRecord; plain?: ThroughputRecord };
  down: { tunnel?: ThroughputRecord; plain?: ThroughputRecord };
  rtt: { tunnel?: RttRecord; plain?: RttRecord };
}

/** Pairs each round's tunnel records (one connection, one phone, the echo) with its plain ones. */
export function tunnelRounds(records: BenchRecord[]): TunnelRound[] {
  if (!records.some((r) => (r.kind === 'throughput' || r.kind === 'rtt') && r.tunnel)) return [];
  const rounds = new Map<number, TunnelRound>();
  const round = (repeat: number) => {
    let r = rounds.get(repeat);
    if (!r) rounds.set(repeat, (r = { repeat, up: {}, down: {}, rtt: {} }));
    return r;
  };
  for (const r of records) {
    // The kernel path's records are reported on their own lines, not paired.
    if ((r.kind === 'throughput' || r.kind === 'rtt') && r.kernel) continue;
    const which = r.kind !== 'throughput' && r.kind !== 'rtt' ? undefined : r.tunnel ? 'tunnel' : 'plain';
    if (r.kind === 'throughput' && r.via === 'sim' && r.devices === 1 && r.connections === 1) round(r.repeat)[r.direction][which!] = r;
    if (r.kind === 'rtt' && r.via === 'echo') round(r.repeat).rtt[which!] = r;
  }
  return [...rounds.values()].sort((a, b) => a.repeat - b.repeat);
}

/** Tunnel MB/s over plain MB/s in one round (NaN when either is missing). */
export function tunnelRatio(round: TunnelRound, direction: 'up' | 'down'): number {
  const { tunnel, plain } = round[direction];
  return tunnel && plain ? tunnel.mbPerSec / plain.mbPerSec : NaN;
}

export function summarize(records: BenchRecord[]): SummaryRow[] {
  const groups = new Map<string, BenchRecord[]>();
  for (const r of records) {
    const name = figureName(r);
    groups.set(name, [...(groups.get(name) ?? []), r]);
  }
  const ratioRows: SummaryRow[] = [];
  const rounds = tunnelRounds(records);
  for (const direction of ['up', 'down'] as const) {
    const ratios = spread(rounds.map((r) => tunnelRatio(r, direction)));
    const name = `tunnel/plain, ${direction === 'up' ? 'to device' : 'from device'}, 1 conn`;
    if (ratios.n) ratioRows.push({ name, unit: `x (goal >= ${TUNNEL_GOALS.minThroughputRatio})`, value: ratios });
  }
  return [...[...groups].flatMap(([name, rs]): SummaryRow[] => {
    const first = rs[0];
    switch (first.kind) {
      case 'throughput': {
        const t = rs as ThroughputRecord[];
        const cpu = t.map((x) => x.cpuSecPerGiB).filter((x): x is number => x !== null);
        const wake = t.map((x) => x.jsWakeupsPerGiB).filter((x): x is number => x !== null);
        return [{
          name,
          unit: 'MB/s',
          value: spread(t.map((x) => x.mbPerSec)),
          ...(cpu.length ? { second: { unit: 'CPU s/GiB', value: spread(cpu) } } : {}),
          ...(wake.length ? { third: { unit: 'JS wakeups/GiB', value: spread(wake) } } : {}),
        }];
      }
      case 'rtt':
        return [{
          name,
          unit: 'p50 ms',
          value: spread(rs.map((x) => (x as typeof first).p50Ms)),
          second: { unit: 'p99 ms', value: spread(rs.map((x) => (x as typeof first).p99Ms)) },
        }];
      case 'connect-rate': {
        const c = rs as ConnectRateRecord[];
        const cpu = c.map((x) => x.daemonCpuUsPerConnect).filter((x): x is number => x !== null);
        const timed = c.filter((x) => x.p50Ms !== undefined && x.p99Ms !== undefined);
        const rate: SummaryRow = {
          name,
          unit: '/s',
          value: spread(c.map((x) => x.perSec)),
          ...(cpu.length ? { second: { unit: 'daemon CPU µs/Connect', value: spread(cpu) } } : {}),
        };
        if (!timed.length) return [rate];
        // The cycle's own time, next to the rate (with concurrency they differ).
        return [rate, {
          name: `${name}: cycle time`,
          unit: 'p50 ms',
          value: spread(timed.map((x) => x.p50Ms!)),
          second: { unit: 'p99 ms', value: spread(timed.map((x) => x.p99Ms!)) },
        }];
      }
      case 'idle':
        return [{ name, unit: 'B RSS/conn', value: spread(rs.map((x) => (x as typeof first).rssBytesPerConnection)) }];
    }
  }), ...ratioRows];
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}

function formatSpread(s: Spread): string {
  if (s.n <= 1) return formatNumber(s.median);
  return `${formatNumber(s.median)} (${formatNumber(s.min)}–${formatNumber(s.max)})`;
}

export function summaryTable(rows: SummaryRow[]): string {
  return table(
    ['figure', 'median (min–max)', 'unit', 'second', 'unit', 'third', 'unit'],
    rows.map((r) => [
      r.name,
      formatSpread(r.value),
      r.unit,
      r.second ? formatSpread(r.second.value) : '',
      r.second?.unit ?? '',
      r.third ? formatSpread(r.third.value) : '',
      r.third?.unit ?? '',
    ]),
  ).join('\n');
}

/** Horizontal bars, scaled to the largest value. */
export function barChart(bars: Array<{ label: string; value: number }>, unit: string, width = 50): string {
  const max = Math.max(...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)), 1e-9);
  const labelWidth = Math.max(...bars.map((b) => b.label.length));
  return bars
    .map((b) => {
      const n = Number.isFinite(b.value) ? Math.round((b.value / max) * width) : 0;
      return `${b.label.padEnd(labelWidth)} |${'#'.repeat(n)}${' '.repeat(width - n)}| ${formatNumber(b.value)} ${unit}`;
    })
    .join('\n');
}

export function throughputChart(rows: SummaryRow[]): string {
  const bars = rows.filter((r) => r.unit === 'MB/s').map((r) => ({ label: r.name, value: r.value.median }));
  return bars.length ? barChart(bars, 'MB/s') : '';
}
