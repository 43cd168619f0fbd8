// The cable benchmark's report: each figure through tsmuxd beside the same
// figure directly over loopback TCP and through the plain SEQPACKET relay,
// with ratios taken round by round (each in one run), then min/median/max;
// and the CoreDeviceProxy tunnel beside the plain mux connection to the same
// phone, round by round, against the goals.
import type { BenchRecord, ThroughputRecord } from '../../src/bench/records.js';
import {
  barChart,
  figureName,
  formatNumber,
  spread,
  TUNNEL_GOALS,
  tunnelRatio,
  tunnelRounds,
  type Spread,
  type TunnelRound,
} from '../../src/bench/report.js';
import { table } from '../../src/cli/commands/common.js';
import type { MachineFacts } from './machine.js';

export type PathRecord = BenchRecord & { path: 'tsmuxd' | 'direct' | 'relay' };

function cell(s: Spread | undefined): string {
  if (!s || s.n === 0) return '-';
  return s.n === 1 ? formatNumber(s.median) : `${formatNumber(s.median)} (${formatNumber(s.min)}-${formatNumber(s.max)})`;
}

/** The headline value of a record: MB/s, p50 ms, Connects/s or RSS bytes per connection. */
function headline(r: BenchRecord): number {
  switch (r.kind) {
    case 'throughput': return r.mbPerSec;
    case 'rtt': return r.p50Ms;
    case 'connect-rate': return r.perSec;
    case 'idle': return r.rssBytesPerConnection;
  }
}

function byRound(records: PathRecord[], path: PathRecord['path'], name: string): Map<number, PathRecord> {
  const m = new Map<number, PathRecord>();
  for (const r of records) if (r.path === path && figureName(r) === name) m.set(r.repeat, r);
  return m;
}

/** tsmuxd's value over the reference's, per round. */
function ratios(a: Map<number, PathRecord>, b: Map<number, PathRecord>, value: (r: PathRecord) => number): Spread {
  const out: number[] = [];
  for (const [round, x] of a) {
    const y = b.get(round);
    if (y) out.push(value(x) / value(y));
  }
  return spread(out);
}

export interface TunnelFigure {
  figure: string;
  unit: string;
  /** Round by round (null: not measured that round). */
  rounds: Array<number | null>;
  value: Spread;
  goal?: string;
  /** Rounds that met the goal, of those measured. */
  roundsMet?: number;
}

export interface CableSummary {
  rows: Array<Record<string, unknown>>;
  scaling: Array<{ devices: number; direction: string; aggregateMBps: Spread; perfectScalingRatio: Spread }>;
  /** The tunnel beside the plain mux connection (absent when the tunnel cases were skipped). */
  tunnel?: TunnelFigure[];
}

const isTunnel = (r: BenchRecord) => (r.kind === 'throughput' || r.kind === 'rtt') && r.tunnel === true;

/** The tunnel's figures beside the plain connection's, one value per round. */
function tunnelFigures(rounds: TunnelRound[]): TunnelFigure[] {
  const out: TunnelFigure[] = [];
  const add = (figure: string, unit: string, value: (r: TunnelRound) => number | undefined, goal?: { text: string; met: (v: number) => boolean }) => {
    const values = rounds.map((r) => value(r) ?? null);
    const measured = values.filter((v): v is number => v !== null && Number.isFinite(v));
    if (measured.length === 0) return;
    out.push({
      figure,
      unit,
      rounds: values,
      value: spread(measured),
      ...(goal ? { goal: goal.text, roundsMet: measured.filter(goal.met).length } : {}),
    });
  };
  const ratioGoal = { text: `>= ${TUNNEL_GOALS.minThroughputRatio}`, met: (v: number) => v >= TUNNEL_GOALS.minThroughputRatio };
  const wakeGoal = { text: `< ${TUNNEL_GOALS.maxJsWakeupsPerGiB}`, met: (v: number) => v < TUNNEL_GOALS.maxJsWakeupsPerGiB };
  for (const [direction, label] of [['up', 'to device'], ['down', 'from device']] as const) {
    add(`${label}, tunnel`, 'MB/s', (r) => r[direction].tunnel?.mbPerSec);
    add(`${label}, plain mux`, 'MB/s', (r) => r[direction].plain?.mbPerSec);
    add(`${label}, tunnel/plain`, 'x', (r) => tunnelRatio(r, direction), ratioGoal);
  }
  for (const p of ['p50', 'p99'] as const) {
    add(`64 B echo RTT ${p}, tunnel`, 'ms', (r) => r.rtt.tunnel?.[`${p}Ms`]);
    add(`64 B echo RTT ${p}, plain mux`, 'ms', (r) => r.rtt.plain?.[`${p}Ms`]);
  }
  for (const [direction, label] of [['up', 'to device'], ['down', 'from device']] as const) {
    add(`daemon CPU ${label}, tunnel`, 's/GiB', (r) => r[direction].tunnel?.cpuSecPerGiB ?? undefined);
    add(`daemon CPU ${label}, plain mux`, 's/GiB', (r) => r[direction].plain?.cpuSecPerGiB ?? undefined);
  }
  for (const [direction, label] of [['up', 'to device'], ['down', 'from device']] as const) {
    add(`JS wakeups ${label}, tunnel`, '/GiB', (r) => r[direction].tunnel?.jsWakeupsPerGiB ?? undefined, wakeGoal);
    add(`JS wakeups ${label}, plain mux`, '/GiB', (r) => r[direction].plain?.jsWakeupsPerGiB ?? undefined);
  }
  return out;
}

function printTunnelReport(figures: TunnelFigure[], rounds: TunnelRound[]): void {
  console.log('\nthe CoreDeviceProxy tunnel beside a plain mux connection to the same phone, 1 connection, round by round');
  console.log(`(goals of issue 19: tunnel/plain >= ${TUNNEL_GOALS.minThroughputRatio} each way, < ${TUNNEL_GOALS.maxJsWakeupsPerGiB} JS wakeups per GiB)`);
  const header = ['figure', 'unit', ...rounds.map((r) => `round ${r.repeat}`), 'median (min-max)', 'goal', 'met'];
  const rows = figures.map((f) => [
    f.figure,
    f.unit,
    ...f.rounds.map((v) => (v === null ? '-' : formatNumber(v))),
    cell(f.value),
    f.goal ?? '',
    f.roundsMet === undefined ? '' : `${f.roundsMet}/${f.value.n} rounds`,
  ]);
  console.log(table(header, rows).join('\n'));
}

export function printCableReport(records: PathRecord[], meta: { bytes: number; repeats: number; facts: MachineFacts }): CableSummary {
  const names = [...new Set(records.filter((r) => !(r.kind === 'throughput' && r.devices > 1) && !isTunnel(r)).map(figureName))];
  const summaryRows: Array<Record<string, unknown>> = [];
  const rows: string[][] = [];
  for (const name of names) {
    const mux = byRound(records, 'tsmuxd', name);
    const direct = byRound(records, 'direct', name);
    const relay = byRound(records, 'relay', name);
    const values = (m: Map<number, PathRecord>) => (m.size ? spread([...m.values()].map(headline)) : undefined);
    const first = [...mux.values()][0] ?? [...direct.values()][0];
    const unit = first.kind === 'throughput' ? 'MB/s' : first.kind === 'rtt' ? 'p50 ms' : first.kind === 'connect-rate' ? '/s' : 'B/conn';
    const cpu = first.kind === 'throughput' ? spread([...mux.values()].map((r) => (r as ThroughputRecord).cpuSecPerGiB ?? NaN)) : undefined;
    const wake = first.kind === 'throughput' ? spread([...mux.values()].map((r) => (r as ThroughputRecord).jsWakeupsPerGiB ?? NaN)) : undefined;
    const p99 = first.kind === 'rtt' ? (m: Map<number, PathRecord>) => spread([...m.values()].map((r) => (r.kind === 'rtt' ? r.p99Ms : NaN))) : undefined;
    const row = {
      figure: name,
      unit,
      tsmuxd: values(mux),
      direct: values(direct),
      relay: values(relay),
      tsmuxdOverDirect: direct.size ? ratios(mux, direct, headline) : undefined,
      tsmuxdOverRelay: relay.size ? ratios(mux, relay, headline) : undefined,
      cpuSecPerGiB: cpu,
      jsWakeupsPerGiB: wake,
      ...(p99 ? { p99Ms: { tsmuxd: p99(mux), direct: p99(direct), relay: p99(relay) } } : {}),
    };
    summaryRows.push(row);
    rows.push([name, unit, cell(row.tsmuxd), cell(row.direct), cell(row.relay), cell(row.tsmuxdOverDirect), cell(row.tsmuxdOverRelay), cell(cpu), cell(wake)]);
    if (p99) rows.push(['  p99', 'ms', cell(p99(mux)), cell(p99(direct)), cell(p99(relay)), '', '', '', '']);
  }
  const f = meta.facts;
  console.log(`\nvirtual cable, ${meta.bytes / (1 << 20)} MiB per throughput figure, ${meta.repeats} round(s): median (min-max)`);
  const load = f.load ? `; load average ${f.load.start[0].toFixed(2)} at the start, ${f.load.end[0].toFixed(2)} at the end, ${f.load.max1m.toFixed(2)} at most` : '';
  console.log(`${f.cpu}, ${f.cores} cores, Linux ${f.kernel}, node ${f.node}${load}\n`);
  console.log(table(['figure', 'unit', 'tsmuxd', 'direct TCP', 'SEQPACKET relay', 'tsmuxd/direct', 'tsmuxd/relay', 'tsmuxd CPU s/GiB', 'JS wakeups/GiB'], rows).join('\n'));

  // Aggregate throughput per phone count, and how close to linear it is.
  const scaling: CableSummary['scaling'] = [];
  const bars: Array<{ label: string; value: number }> = [];
  for (const direction of ['up', 'down'] as const) {
    const perCount = new Map<number, Map<number, number>>();
    for (const r of records) {
      if (r.path !== 'tsmuxd' || r.kind !== 'throughput' || r.tunnel || r.direction !== direction || r.connections !== 1) continue;
      const rounds = perCount.get(r.devices) ?? new Map<number, number>();
      rounds.set(r.repeat, r.mbPerSec);
      perCount.set(r.devices, rounds);
    }
    const one = perCount.get(1);
    for (const [devices, rounds] of [...perCount].sort((a, b) => a[0] - b[0])) {
      const agg = spread([...rounds.values()]);
      const linear = spread([...rounds].filter(([round]) => one?.has(round)).map(([round, v]) => v / (devices * one!.get(round)!)));
      scaling.push({ devices, direction, aggregateMBps: agg, perfectScalingRatio: linear });
      bars.push({ label: `${direction === 'up' ? 'to' : 'from'} ${devices} phone(s)`, value: agg.median });
    }
  }
  if (scaling.length) {
    console.log('\naggregate throughput through tsmuxd, one connection per phone (ratio: of perfectly linear scaling)');
    console.log(table(['phones', 'direction', 'MB/s', 'of linear'], scaling.map((s) => [String(s.devices), s.direction, cell(s.aggregateMBps), cell(s.perfectScalingRatio)])).join('\n'));
    console.log(`\n${barChart(bars, 'MB/s')}`);
  }

  const rounds = tunnelRounds(records.filter((r) => r.path === 'tsmuxd'));
  if (rounds.length === 0) return { rows: summaryRows, scaling };
  const tunnel = tunnelFigures(rounds);
  printTunnelReport(tunnel, rounds);
  return { rows: summaryRows, scaling, tunnel };
}
