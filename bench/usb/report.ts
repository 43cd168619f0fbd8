// The lab benchmark's report (lab/bench, npm run bench:usb): reads the
// guest's bench.jsonl, prints each figure as min/median/max over the rounds,
// the ratios tsmuxd/raw and tsmuxd/usbmuxd (each taken within one round,
// then min/median/max), the targets they are held to (reported, never
// asserted), an ASCII chart of throughput per path, and writes the JSON.
//   node dist/bench/usb/report.js BENCH_JSONL HOST_FACTS_JSON [RESULTS_DIR]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const GiB = 1 << 30;
const PATHS = ['raw', 'usbmuxd', 'tsmuxd'] as const;
type PathName = (typeof PATHS)[number];

interface ClientResult {
  kind: 'throughput' | 'rtt';
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
  p50Ms?: number;
  p99Ms?: number;
}

interface RecordLine {
  kind?: string;
  name?: string;
  ok?: boolean;
  seconds?: number;
  daemonCpuSec?: number | null;
  round?: number;
  path?: string;
  case?: string;
  daemonCpuProcSec?: number | null;
  simCpuSec?: number | null;
  simThreadCpuSec?: Record<string, number>;
  /** sim-stats: the sim's SIGHUP line, {"event":"stats","stats":{...}}. */
  line?: { stats?: Record<string, number> };
  result?: ClientResult;
  error?: string;
}

/** One round's figures for one path; absent where a case failed or did not run. */
type Figures = Partial<Record<MetricKey, number>>;

type MetricKey =
  | 'upMBps'
  | 'downMBps'
  | 'upCpuSecPerGiB'
  | 'downCpuSecPerGiB'
  | 'rttP50Ms'
  | 'rttP99Ms'
  | 'upSimCpuSecPerGiB'
  | 'downSimCpuSecPerGiB'
  | 'idleDaemonCpuPct'
  | 'idleSimCpuPct';

const METRICS: { key: MetricKey; label: string; digits: number }[] = [
  { key: 'upMBps', label: 'host->device MB/s', digits: 1 },
  { key: 'downMBps', label: 'device->host MB/s', digits: 1 },
  { key: 'upCpuSecPerGiB', label: 'CPU s/GiB up', digits: 2 },
  { key: 'downCpuSecPerGiB', label: 'CPU s/GiB down', digits: 2 },
  { key: 'rttP50Ms', label: '64 B RTT p50 ms', digits: 2 },
  { key: 'rttP99Ms', label: '64 B RTT p99 ms', digits: 2 },
  { key: 'upSimCpuSecPerGiB', label: 'sim CPU s/GiB up', digits: 2 },
  { key: 'downSimCpuSecPerGiB', label: 'sim CPU s/GiB down', digits: 2 },
  { key: 'idleDaemonCpuPct', label: 'idle: host side CPU %', digits: 1 },
  { key: 'idleSimCpuPct', label: 'idle: sim CPU %', digits: 1 },
];

// The issue's targets: each a ratio of tsmuxd to a reference within a round.
const TARGETS: { key: MetricKey; against: 'raw' | 'usbmuxd'; op: '>=' | '<='; value: number }[] = [
  { key: 'upMBps', against: 'raw', op: '>=', value: 0.8 },
  { key: 'downMBps', against: 'raw', op: '>=', value: 0.8 },
  { key: 'upCpuSecPerGiB', against: 'usbmuxd', op: '<=', value: 0.5 },
  { key: 'downCpuSecPerGiB', against: 'usbmuxd', op: '<=', value: 0.5 },
  { key: 'rttP50Ms', against: 'raw', op: '<=', value: 1.15 },
  { key: 'rttP99Ms', against: 'usbmuxd', op: '<=', value: 1.0 },
];

interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

function spread(values: number[]): Spread | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length };
}

function figuresFrom(records: RecordLine[]): Map<number, Map<PathName, Figures>> {
  const rounds = new Map<number, Map<PathName, Figures>>();
  for (const r of records) {
    if (r.round === undefined || !PATHS.includes(r.path as PathName)) continue;
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
    const res = r.result;
    if (!res) continue;
    // Single-connection, single-phone figures only (the client may add more).
    if (res.kind === 'throughput' && res.direction && res.bytes && (res.connections ?? 1) === 1 && (res.devices ?? 1) === 1) {
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
    }
  }
  return rounds;
}

const fmt = (v: number | undefined, digits: number) => (v === undefined ? '-' : v.toFixed(digits));
const fmtSpread = (s: Spread | null, digits: number) =>
  s ? `${fmt(s.min, digits)}/${fmt(s.median, digits)}/${fmt(s.max, digits)}` : '-';

function main(): void {
  const [jsonlPath, hostFactsText, resultsDir] = process.argv.slice(2);
  if (!jsonlPath) throw new Error('usage: report.js BENCH_JSONL HOST_FACTS_JSON [RESULTS_DIR]');
  const lines = readFileSync(jsonlPath, 'utf8').split('\n').filter((l) => l.trim());
  const records: RecordLine[] = [];
  for (const l of lines) {
    try {
      records.push(JSON.parse(l) as RecordLine);
    } catch {
      process.stdout.write(`report: skipping a line that is not JSON: ${l.slice(0, 120)}\n`);
    }
  }
  const guest = records.find((r) => r.kind === 'guest') ?? null;
  const errors = records.filter((r) => r.error).map((r) => ({ round: r.round, path: r.path, case: r.case, error: r.error }));
  const rounds = figuresFrom(records);
  const roundNumbers = [...rounds.keys()].sort((a, b) => a - b);

  const summary: Record<string, Record<string, Spread | null>> = {};
  for (const m of METRICS) {
    summary[m.key] = {};
    for (const p of PATHS) {
      summary[m.key]![p] = spread(roundNumbers.map((n) => rounds.get(n)?.get(p)?.[m.key]).filter((v): v is number => v !== undefined));
    }
  }
  const ratio = (key: MetricKey, against: PathName) =>
    spread(
      roundNumbers
        .map((n) => {
          const t = rounds.get(n)?.get('tsmuxd')?.[key];
          const ref = rounds.get(n)?.get(against)?.[key];
          return t !== undefined && ref !== undefined && ref > 0 ? t / ref : undefined;
        })
        .filter((v): v is number => v !== undefined),
    );
  const ratios: Record<string, { vsRaw: Spread | null; vsUsbmuxd: Spread | null }> = {};
  for (const m of METRICS) ratios[m.key] = { vsRaw: ratio(m.key, 'raw'), vsUsbmuxd: ratio(m.key, 'usbmuxd') };
  const targets = TARGETS.map((t) => {
    const r = t.against === 'raw' ? ratios[t.key]!.vsRaw : ratios[t.key]!.vsUsbmuxd;
    const met = r ? (t.op === '>=' ? r.median >= t.value : r.median <= t.value) : null;
    return { metric: t.key, ratio: `tsmuxd/${t.against}`, target: `${t.op} ${t.value}`, median: r?.median ?? null, met };
  });

  // ---- the table ----
  const out: string[] = [];
  const bytes = records.find((r) => r.result?.kind === 'throughput')?.result?.bytes;
  const rttCount = records.find((r) => r.result?.kind === 'rtt')?.result?.count;
  out.push('');
  out.push(`lab benchmark: ${roundNumbers.length} round(s), ${bytes ? (bytes / (1 << 20)).toFixed(0) + ' MiB' : '?'} per throughput measurement, ${rttCount ?? '?'} round trips`);
  out.push('each cell: min/median/max over the rounds; ratios are taken within a round');
  out.push('');
  const cols = ['metric', 'raw libusb', 'usbmuxd 1.1.1', 'tsmuxd', 'tsmuxd/raw', 'tsmuxd/usbmuxd', 'target'];
  const rows: string[][] = [cols];
  for (const m of METRICS) {
    const t = TARGETS.find((x) => x.key === m.key);
    const tr = targets.find((x) => x.metric === m.key);
    rows.push([
      m.label,
      fmtSpread(summary[m.key]!.raw!, m.digits),
      fmtSpread(summary[m.key]!.usbmuxd!, m.digits),
      fmtSpread(summary[m.key]!.tsmuxd!, m.digits),
      fmtSpread(ratios[m.key]!.vsRaw, 2),
      fmtSpread(ratios[m.key]!.vsUsbmuxd, 2),
      t ? `/${t.against} ${t.op} ${t.value}: ${tr?.met === null ? 'n/a' : tr?.met ? 'met' : 'not met'}` : '',
    ]);
  }
  const widths = cols.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const [i, r] of rows.entries()) {
    out.push(r.map((c, j) => c.padEnd(widths[j]!)).join('  ').trimEnd());
    if (i === 0) out.push(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  out.push("(host side CPU: raw-libusb's own for raw, the daemon process's otherwise; sim CPU is the device side;");
  out.push(' in this guest a process is also charged for the dummy_hcd softirq work that interrupts it)');

  // ---- the chart ----
  const chartWidth = 50;
  const peak = Math.max(1, ...(['upMBps', 'downMBps'] as const).flatMap((k) => PATHS.map((p) => summary[k]![p]?.max ?? 0)));
  out.push('');
  out.push('throughput, median MB/s (min-max)');
  for (const [k, name] of [['upMBps', 'host->device'], ['downMBps', 'device->host']] as const) {
    out.push(`  ${name}`);
    for (const p of PATHS) {
      const s = summary[k]![p];
      const bar = s ? '#'.repeat(Math.max(s.median > 0 ? 1 : 0, Math.round((s.median / peak) * chartWidth))) : '';
      out.push(`    ${p.padEnd(8)} |${bar.padEnd(chartWidth)} ${s ? `${s.median.toFixed(1)} (${s.min.toFixed(1)}-${s.max.toFixed(1)})` : 'no figure'}`);
    }
  }
  // Where the sim's time went (the device side bounds the daemons' paths
  // here): its threads' CPU per case, and its transfer sizes, last round.
  const last = roundNumbers[roundNumbers.length - 1];
  const threadLines = records.filter((r) => r.round === last && r.simThreadCpuSec && r.result);
  if (threadLines.length) {
    out.push('');
    out.push(`the sim's CPU by thread, round ${last} (seconds)`);
    for (const r of threadLines) {
      const top = Object.entries(r.simThreadCpuSec!).sort((a, b) => b[1] - a[1]).slice(0, 4);
      out.push(`  ${String(r.path).padEnd(8)} ${String(r.case).padEnd(5)} ${top.map(([n, v]) => `${n} ${v.toFixed(2)}`).join(', ')}`);
    }
  }
  const statLines = records.filter((r) => r.kind === 'sim-stats' && r.round === last && r.line?.stats);
  if (statLines.length) {
    out.push('');
    out.push(`the sim's transfers over each path's run, round ${last}: OUT (host->device) and IN, count and mean size`);
    for (const r of statLines) {
      const st = r.line!.stats!;
      const mean = (bytes?: number, n?: number) => (bytes && n ? `${(bytes / n / 1024).toFixed(1)} KiB` : '-');
      out.push(
        `  ${String(r.path).padEnd(8)} OUT ${st.transfersIn ?? '?'} x ${mean(st.usbBytesIn, st.transfersIn)} (+${st.zlpsIn ?? '?'} ZLPs), ` +
          `IN ${st.transfersOut ?? '?'} x ${mean(st.usbBytesOut, st.transfersOut)} (+${st.zlpsOut ?? '?'} ZLPs)`,
      );
    }
  }
  const checks = records.filter((r) => r.kind === 'check').map((r) => ({ name: r.name, ok: r.ok }));
  for (const c of checks) out.push(`check ${c.name}: ${c.ok ? 'ok' : 'FAILED'}`);
  if (errors.length) {
    out.push('');
    out.push('errors:');
    for (const e of errors) out.push(`  round ${e.round} ${e.path} ${e.case}: ${e.error}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);

  // ---- the JSON ----
  let host: unknown = null;
  try {
    host = JSON.parse(hostFactsText ?? 'null');
  } catch {
    host = hostFactsText;
  }
  const date = new Date();
  const report = {
    date: date.toISOString(),
    machine: { host, guest },
    settings: { bytesPerMeasurement: bytes ?? null, rttCount: rttCount ?? null, rounds: roundNumbers.length },
    units: { throughput: 'MB/s (10^6 bytes per second)', cpu: 'CPU seconds per GiB moved', rtt: 'ms' },
    summary,
    ratios,
    targets,
    checks,
    rounds: roundNumbers.map((n) => ({ round: n, ...Object.fromEntries(rounds.get(n)!) })),
    errors,
    records: records.filter((r) => r.kind !== 'guest' && r.kind !== 'check'),
  };
  if (resultsDir) {
    mkdirSync(resultsDir, { recursive: true });
    const stamp = date.toISOString().slice(0, 16).replace(/:/g, '');
    const text = `${JSON.stringify(report, null, 2)}\n`;
    writeFileSync(join(resultsDir, `usb-${stamp}.json`), text);
    writeFileSync(join(resultsDir, 'usb-latest.json'), text);
    process.stdout.write(`\nwrote ${join(resultsDir, `usb-${stamp}.json`)} and usb-latest.json\n`);
  } else {
    const text = `${JSON.stringify(report, null, 2)}\n`;
    const at = jsonlPath.replace(/\.jsonl$/, '') + '-report.json';
    writeFileSync(at, text);
    process.stdout.write(`\n(not saved under bench/results; the report is in ${at})\n`);
  }
}

main();
