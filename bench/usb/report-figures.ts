// The lab benchmark's figures (bench/usb/report.ts): the guest's records of
// one round set (the phone-like round, the wide-window round, the
// several-phone round) turned into figures per round and path, each figure's
// min/median/max over the rounds, the ratios of tsmuxd to the other paths
// taken within each round, and the text table of a set.

export const GiB = 1 << 30;
export const PATHS = ['raw', 'usbmuxd', 'tsmuxd'] as const;
export type PathName = (typeof PATHS)[number];

export interface ClientResult {
  kind: 'throughput' | 'rtt' | 'connect-rate' | 'daemon';
  direction?: 'up' | 'down';
  bytes?: number;
  connections?: number;
  devices?: number;
  seconds?: number;
  mbPerSec?: number;
  mibPerSec?: number;
  daemonCpuSec?: number | null;
  cpuSecPerGiB?: number | null;
  count?: number;
  cycles?: number;
  perSec?: number;
  concurrency?: number;
  echoBytes?: number;
  daemonCpuUsPerConnect?: number | null;
  p50Ms?: number;
  p99Ms?: number;
}

export interface RecordLine {
  kind?: string;
  name?: string;
  ok?: boolean;
  detail?: string;
  seconds?: number | null;
  daemonCpuSec?: number | null;
  round?: number;
  path?: string;
  case?: string;
  /** The wide-window round: the sim's window. */
  window?: number;
  /** The several-phone round: how many at once. */
  phones?: number;
  pairedBefore?: number;
  daemonCpuProcSec?: number | null;
  simCpuSec?: number | null;
  simThreadCpuSec?: Record<string, number>;
  /** sim-stats: the sim's SIGHUP line, {"event":"stats","stats":{...}}. */
  line?: { stats?: Record<string, number> };
  result?: ClientResult;
  error?: string;
  [more: string]: unknown;
}

export type MetricKey =
  | 'upMBps'
  | 'downMBps'
  | 'upCpuSecPerGiB'
  | 'downCpuSecPerGiB'
  | 'rttP50Ms'
  | 'rttP99Ms'
  | 'upSimCpuSecPerGiB'
  | 'downSimCpuSecPerGiB'
  | 'idleDaemonCpuPct'
  | 'idleSimCpuPct'
  | 'listedSec'
  | 'connectPerSec'
  | 'connectP50Ms'
  | 'connectP99Ms'
  | 'connectCpuUsPerConnect';

export interface Metric {
  key: MetricKey;
  label: string;
  digits: number;
}

/** One round's figures for one path; absent where a case failed or did not run. */
export type Figures = Partial<Record<MetricKey, number>>;
export type RoundFigures = Map<number, Map<PathName, Figures>>;

export interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

export function spread(values: number[]): Spread | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length };
}

/**
 * The figures of the records `inSet` picks. `several`: the several-phone
 * round, whose throughput records move data to all phones at once (the
 * others' are one connection to one phone).
 */
export function figuresFrom(records: RecordLine[], inSet: (r: RecordLine) => boolean, several = false): RoundFigures {
  const rounds: RoundFigures = new Map();
  for (const r of records) {
    if (r.round === undefined || !PATHS.includes(r.path as PathName) || !inSet(r)) continue;
    const byPath = rounds.get(r.round) ?? new Map<PathName, Figures>();
    rounds.set(r.round, byPath);
    const f = byPath.get(r.path as PathName) ?? {};
    byPath.set(r.path as PathName, f);
    // Connected and listed, no client: what the host side and the sim burn doing nothing.
    if (r.kind === 'idle' && r.seconds) {
      if (r.daemonCpuSec != null) f.idleDaemonCpuPct = (100 * r.daemonCpuSec) / r.seconds;
      if (r.simCpuSec != null) f.idleSimCpuPct = (100 * r.simCpuSec) / r.seconds;
      continue;
    }
    if (r.kind === 'listed') {
      if (typeof r.seconds === 'number') f.listedSec = r.seconds;
      continue;
    }
    const res = r.result;
    if (!res) continue;
    const shapeFits = several ? (res.devices ?? 1) > 1 : (res.connections ?? 1) === 1 && (res.devices ?? 1) === 1;
    if (res.kind === 'throughput' && res.direction && res.bytes && shapeFits) {
      const mbps = res.mbPerSec ?? (res.seconds ? res.bytes / res.seconds / 1e6 : undefined);
      // The client's own daemon CPU when it measured one, else /proc around the run.
      const cpu = res.daemonCpuSec ?? r.daemonCpuProcSec ?? null;
      const gib = res.bytes / GiB;
      if (res.direction === 'up') {
        if (mbps !== undefined) f.upMBps = mbps;
        if (cpu !== null) f.upCpuSecPerGiB = res.cpuSecPerGiB ?? cpu / gib;
        if (r.simCpuSec != null) f.upSimCpuSecPerGiB = r.simCpuSec / gib;
      } else {
        if (mbps !== undefined) f.downMBps = mbps;
        if (cpu !== null) f.downCpuSecPerGiB = res.cpuSecPerGiB ?? cpu / gib;
        if (r.simCpuSec != null) f.downSimCpuSecPerGiB = r.simCpuSec / gib;
      }
    } else if (res.kind === 'rtt') {
      if (res.p50Ms !== undefined) f.rttP50Ms = res.p50Ms;
      if (res.p99Ms !== undefined) f.rttP99Ms = res.p99Ms;
    } else if (res.kind === 'connect-rate' && res.cycles) {
      if (res.perSec !== undefined) f.connectPerSec = res.perSec;
      if (res.p50Ms !== undefined) f.connectP50Ms = res.p50Ms;
      if (res.p99Ms !== undefined) f.connectP99Ms = res.p99Ms;
      const cpuUs = res.daemonCpuUsPerConnect ?? (r.daemonCpuProcSec != null ? (r.daemonCpuProcSec * 1e6) / res.cycles : null);
      if (cpuUs !== null) f.connectCpuUsPerConnect = cpuUs;
    }
  }
  return rounds;
}

export interface SetSummary {
  summary: Record<string, Record<string, Spread | null>>;
  ratios: Record<string, { vsRaw: Spread | null; vsUsbmuxd: Spread | null }>;
}

/** Each metric's spread per path over the rounds, and tsmuxd's ratios within each round. */
export function summarizeSet(rounds: RoundFigures, metrics: Metric[]): SetSummary {
  const numbers = [...rounds.keys()].sort((a, b) => a - b);
  const summary: SetSummary['summary'] = {};
  const ratios: SetSummary['ratios'] = {};
  const ratio = (key: MetricKey, against: PathName) =>
    spread(
      numbers
        .map((n) => {
          const t = rounds.get(n)?.get('tsmuxd')?.[key];
          const ref = rounds.get(n)?.get(against)?.[key];
          return t !== undefined && ref !== undefined && ref > 0 ? t / ref : undefined;
        })
        .filter((v): v is number => v !== undefined),
    );
  for (const m of metrics) {
    summary[m.key] = {};
    for (const p of PATHS) {
      summary[m.key]![p] = spread(numbers.map((n) => rounds.get(n)?.get(p)?.[m.key]).filter((v): v is number => v !== undefined));
    }
    ratios[m.key] = { vsRaw: ratio(m.key, 'raw'), vsUsbmuxd: ratio(m.key, 'usbmuxd') };
  }
  return { summary, ratios };
}

const fmt = (v: number | undefined, digits: number) => (v === undefined ? '-' : v.toFixed(digits));
export const fmtSpread = (s: Spread | null | undefined, digits: number) =>
  s ? `${fmt(s.min, digits)}/${fmt(s.median, digits)}/${fmt(s.max, digits)}` : '-';

const PATH_TITLES: Record<PathName, string> = { raw: 'raw libusb', usbmuxd: 'usbmuxd 1.1.1', tsmuxd: 'tsmuxd' };

/**
 * A set's table: a row per metric that has a figure, a column per path in
 * `paths`, the ratios tsmuxd/raw (when raw is a column) and tsmuxd/usbmuxd,
 * and `note(metric)` as the last column (the targets).
 */
export function setTable(set: SetSummary, metrics: Metric[], paths: readonly PathName[], note: (m: Metric) => string = () => ''): string[] {
  const cols = ['metric', ...paths.map((p) => PATH_TITLES[p])];
  if (paths.includes('raw')) cols.push('tsmuxd/raw');
  cols.push('tsmuxd/usbmuxd');
  const withNote = metrics.some((m) => note(m));
  if (withNote) cols.push('target');
  const rows: string[][] = [cols];
  for (const m of metrics) {
    if (!paths.some((p) => set.summary[m.key]?.[p])) continue;
    const row = [m.label, ...paths.map((p) => fmtSpread(set.summary[m.key]![p], m.digits))];
    if (paths.includes('raw')) row.push(fmtSpread(set.ratios[m.key]!.vsRaw, 2));
    row.push(fmtSpread(set.ratios[m.key]!.vsUsbmuxd, 2));
    if (withNote) row.push(note(m));
    rows.push(row);
  }
  const widths = cols.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const out: string[] = [];
  for (const [i, r] of rows.entries()) {
    out.push(r.map((c, j) => c.padEnd(widths[j]!)).join('  ').trimEnd());
    if (i === 0) out.push(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  return out;
}
