// The lab benchmark's report (lab/bench, npm run bench:usb): reads the
// guest's bench.jsonl and prints, for each round set (the phone-like round;
// the wide-window round, the same daemons with the sim's window widened;
// the several-phone round), each figure as min/median/max over the rounds,
// the ratios tsmuxd/raw and tsmuxd/usbmuxd (each taken within one round,
// then min/median/max), the targets they are held to (reported, never
// asserted), an ASCII chart of throughput per path, the checks (the raw
// device's refusal, the churn), and writes the JSON.
//   node dist/bench/usb/report.js BENCH_JSONL HOST_FACTS_JSON [RESULTS_DIR]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  figuresFrom,
  PATHS,
  setTable,
  summarizeSet,
  type Metric,
  type MetricKey,
  type RecordLine,
  type RoundFigures,
  type SetSummary,
} from './report-figures.js';

const THROUGHPUT_METRICS: Metric[] = [
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
  { key: 'listedSec', label: 'start to listed s', digits: 1 },
];
// The Connect cycle runs in the phone-like round only.
const PHONE_METRICS: Metric[] = [
  ...THROUGHPUT_METRICS,
  { key: 'connectPerSec', label: 'Connect+1 B echo cycles/s', digits: 1 },
  { key: 'connectP50Ms', label: 'Connect cycle p50 ms', digits: 2 },
  { key: 'connectP99Ms', label: 'Connect cycle p99 ms', digits: 2 },
  { key: 'connectCpuUsPerConnect', label: 'daemon CPU us/Connect', digits: 0 },
];
const SEVERAL_METRICS: Metric[] = [
  { key: 'upMBps', label: 'aggregate host->device MB/s', digits: 1 },
  { key: 'downMBps', label: 'aggregate device->host MB/s', digits: 1 },
  { key: 'upCpuSecPerGiB', label: 'CPU s/GiB up', digits: 2 },
  { key: 'downCpuSecPerGiB', label: 'CPU s/GiB down', digits: 2 },
  { key: 'upSimCpuSecPerGiB', label: 'sims CPU s/GiB up', digits: 2 },
  { key: 'downSimCpuSecPerGiB', label: 'sims CPU s/GiB down', digits: 2 },
  { key: 'listedSec', label: 'start to all listed s', digits: 1 },
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

const isPhoneLike = (r: RecordLine) => r.window === undefined && (r.phones ?? 1) === 1;
const label = (r: RecordLine) => `${r.path}${r.window ? ` w${r.window / 1024}K` : ''}${(r.phones ?? 1) > 1 ? ` x${r.phones}` : ''}`;

/** The wide-window round borrows its round's raw figures: the ceiling is the same device and transport. */
function withRaw(rounds: RoundFigures, phone: RoundFigures): RoundFigures {
  for (const [n, byPath] of rounds) {
    const raw = phone.get(n)?.get('raw');
    if (raw) byPath.set('raw', raw);
  }
  return rounds;
}

const roundsOf = (rounds: RoundFigures) =>
  [...rounds.keys()].sort((a, b) => a - b).map((n) => ({ round: n, ...Object.fromEntries(rounds.get(n)!) }));

/** What a churn check did: its cycles, the streams' transfers, why it failed. */
function checkDetail(r: RecordLine): string {
  if (!String(r.name).startsWith('churn-')) return '';
  const streams = r.streams as { transfers?: number; bytes?: number; ok?: boolean } | null;
  const cycles = (r.cycleSeconds as [number, number][] | undefined) ?? [];
  const back = cycles.map((c) => c[1]);
  const parts = [
    `${r.cycles}/${r.cyclesWanted} unplug/replug cycles of phone 0`,
    back.length ? `listed again after ${Math.min(...back).toFixed(1)}-${Math.max(...back).toFixed(1)} s` : '',
    streams ? `${r.streamedPhones} phones streaming: ${streams.transfers} hashed transfers of ${r.mibPerTransfer} MiB, ${((streams.bytes ?? 0) / (1 << 20)).toFixed(0)} MiB verified` : 'no stream summary',
  ];
  return ` (${parts.filter(Boolean).join('; ')})${r.detail ? `: ${r.detail}` : ''}`;
}

/**
 * What the start-to-listed figures include: a first pairing (no pair record
 * before the start), and, said loudly, a phone listed without one or after
 * a failed preflight (the daemon gave up on it: its log says why).
 */
function pairingNotes(records: RecordLine[], inSet: (r: RecordLine) => boolean, phones: number): string[] {
  const notes: string[] = [];
  for (const r of records.filter((x) => x.kind === 'listed' && inSet(x))) {
    const before = r.pairedBefore as number | undefined;
    const after = r.pairedAfter as number | undefined;
    const where = `round ${r.round} ${r.path}`;
    if (before !== undefined && before < phones) notes.push(`  ${where}: start to listed includes pairing ${phones - before} of ${phones} phone(s) for the first time`);
    if (after !== undefined && after < phones && r.seconds != null) {
      notes.push(`  ${where}: LISTED ${phones - after} of ${phones} phone(s) WITHOUT A PAIR RECORD (its preflight gave up; see ${r.path}.log)`);
    }
    const failed = r.preflightFailures as number | undefined;
    if (failed) notes.push(`  ${where}: ${failed} PREFLIGHT(S) FAILED before the listing (the phone is listed anyway; see ${r.path}.log)`);
  }
  return notes;
}

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
  const errors = records.filter((r) => r.error).map((r) => ({ round: r.round, path: r.path, window: r.window, phones: r.phones, case: r.case, error: r.error }));
  const rounds = figuresFrom(records, isPhoneLike);
  const roundNumbers = [...rounds.keys()].sort((a, b) => a - b);
  const { summary, ratios } = summarizeSet(rounds, PHONE_METRICS);
  const targets = TARGETS.map((t) => {
    const r = t.against === 'raw' ? ratios[t.key]!.vsRaw : ratios[t.key]!.vsUsbmuxd;
    const met = r ? (t.op === '>=' ? r.median >= t.value : r.median <= t.value) : null;
    return { metric: t.key, ratio: `tsmuxd/${t.against}`, target: `${t.op} ${t.value}`, median: r?.median ?? null, met };
  });
  const wideWindow = records.find((r) => r.window !== undefined)?.window;
  const wideRounds = wideWindow === undefined ? undefined : withRaw(figuresFrom(records, (r) => r.window === wideWindow), rounds);
  const wide: SetSummary | undefined = wideRounds && summarizeSet(wideRounds, THROUGHPUT_METRICS);
  const phones = records.find((r) => (r.phones ?? 1) > 1 && r.round !== undefined)?.phones;
  const severalRounds = phones === undefined ? undefined : figuresFrom(records, (r) => r.phones === phones, true);
  const several: SetSummary | undefined = severalRounds && summarizeSet(severalRounds, SEVERAL_METRICS);

  // ---- the tables ----
  const out: string[] = [];
  const bytes = records.find((r) => r.result?.kind === 'throughput' && isPhoneLike(r))?.result?.bytes;
  const rttCount = records.find((r) => r.result?.kind === 'rtt')?.result?.count;
  const connect = records.find((r) => r.result?.kind === 'connect-rate')?.result;
  out.push('');
  out.push(`lab benchmark: ${roundNumbers.length} round(s), ${bytes ? (bytes / (1 << 20)).toFixed(0) + ' MiB' : '?'} per throughput measurement, ${rttCount ?? '?'} round trips`);
  out.push('each cell: min/median/max over the rounds; ratios are taken within a round');
  out.push('');
  out.push("phone-like sim (the phone's 128 KiB window)");
  out.push(
    ...setTable({ summary, ratios }, PHONE_METRICS, PATHS, (m) => {
      const t = TARGETS.find((x) => x.key === m.key);
      const tr = targets.find((x) => x.metric === m.key);
      return t ? `/${t.against} ${t.op} ${t.value}: ${tr?.met === null ? 'n/a' : tr?.met ? 'met' : 'not met'}` : '';
    }),
  );
  out.push("(host side CPU: raw-libusb's own for raw, the daemon process's otherwise; sim CPU is the device side;");
  out.push(' in this guest a process is also charged for the dummy_hcd softirq work that interrupts it;');
  if (summary.listedSec?.usbmuxd || summary.listedSec?.tsmuxd) {
    out.push(' start to listed: from the daemon\'s start until idevice_id -l lists the phone, polled about once a second;');
  }
  if (connect) {
    out.push(` Connect cycle: ${connect.cycles} in a row (concurrency ${connect.concurrency}): socket, Connect to the echo (7),${connect.echoBytes ? ` ${connect.echoBytes} B each way,` : ''} close)`);
  } else out.push(' no Connect cycles measured)');
  out.push(...pairingNotes(records, isPhoneLike, 1));
  if (wide && wideWindow !== undefined) {
    out.push('');
    out.push(`wide-window sim (${wideWindow / 1024} KiB window; raw: the same round's ceiling)`);
    out.push(...setTable(wide, THROUGHPUT_METRICS, PATHS));
    out.push(...pairingNotes(records, (r) => r.window === wideWindow, 1));
  }
  if (several && phones !== undefined) {
    out.push('');
    const perPhone = records.find((r) => r.phones === phones && r.result?.kind === 'throughput')?.result;
    const each = perPhone?.bytes && perPhone.devices ? ` ${(perPhone.bytes / perPhone.devices / (1 << 20)).toFixed(0)} MiB per phone,` : '';
    out.push(`${phones} phones at once (phone-like sims, each on its own dummy_hcd bus;${each} all streaming together)`);
    out.push(...setTable(several, SEVERAL_METRICS, ['usbmuxd', 'tsmuxd']));
    out.push(...pairingNotes(records, (r) => r.phones === phones, phones));
  }

  // ---- the chart ----
  const chartWidth = 50;
  // Each set's paths, one bar each (the wide set's raw is the phone set's).
  const bars: { name: string; set: SetSummary['summary'] }[] = PATHS.map((p) => ({ name: p, set: summary }));
  for (const p of ['usbmuxd', 'tsmuxd'] as const) {
    if (wide && wideWindow !== undefined) bars.push({ name: `${p} w${wideWindow / 1024}K`, set: wide.summary });
  }
  for (const p of ['usbmuxd', 'tsmuxd'] as const) if (several) bars.push({ name: `${p} x${phones}`, set: several.summary });
  const pathOf = (name: string) => name.split(' ')[0]!;
  const peak = Math.max(1, ...(['upMBps', 'downMBps'] as const).flatMap((k) => bars.map((b) => b.set[k]?.[pathOf(b.name)]?.max ?? 0)));
  const nameWidth = Math.max(...bars.map((b) => b.name.length));
  out.push('');
  out.push(`throughput, median MB/s (min-max)${several ? `; x${phones}: all phones together` : ''}`);
  for (const [k, name] of [['upMBps', 'host->device'], ['downMBps', 'device->host']] as const) {
    out.push(`  ${name}`);
    for (const b of bars) {
      const s = b.set[k]?.[pathOf(b.name)];
      const bar = s ? '#'.repeat(Math.max(s.median > 0 ? 1 : 0, Math.round((s.median / peak) * chartWidth))) : '';
      out.push(`    ${b.name.padEnd(nameWidth)} |${bar.padEnd(chartWidth)} ${s ? `${s.median.toFixed(1)} (${s.min.toFixed(1)}-${s.max.toFixed(1)})` : 'no figure'}`);
    }
  }
  // Where the sim's time went (the device side bounds the daemons' paths
  // here): its threads' CPU per case, and its transfer sizes, last round.
  const last = roundNumbers[roundNumbers.length - 1];
  const threadLines = records.filter(
    (r) => r.round === last && r.simThreadCpuSec && Object.keys(r.simThreadCpuSec).length && r.result && r.result.kind !== 'daemon',
  );
  if (threadLines.length) {
    out.push('');
    out.push(`the sim's CPU by thread, round ${last} (seconds)`);
    for (const r of threadLines) {
      const top = Object.entries(r.simThreadCpuSec!).sort((a, b) => b[1] - a[1]).slice(0, 4);
      out.push(`  ${label(r).padEnd(13)} ${String(r.case).padEnd(7)} ${top.map(([n, v]) => `${n} ${v.toFixed(2)}`).join(', ')}`);
    }
  }
  const statLines = records.filter((r) => r.kind === 'sim-stats' && r.round === last && r.line?.stats);
  if (statLines.length) {
    out.push('');
    out.push(`the sim's transfers over each path's run, round ${last}: OUT (host->device) and IN, count and mean size`);
    for (const r of statLines) {
      const st = r.line!.stats!;
      const mean = (bytes?: number, n?: number) => (bytes && n ? `${(bytes / n / 1024).toFixed(1)} KiB` : '-');
      // The raw bulk device moves its bytes outside the engine's mux
      // counters, so its line would read 0 transfers; say so instead.
      if (r.path === 'raw') {
        out.push(`  ${label(r).padEnd(13)} not counted (the raw bulk device keeps no mux transfer counters)`);
        continue;
      }
      out.push(
        `  ${label(r).padEnd(13)} OUT ${st.transfersIn ?? '?'} x ${mean(st.usbBytesIn, st.transfersIn)} (+${st.zlpsIn ?? '?'} ZLPs), ` +
          `IN ${st.transfersOut ?? '?'} x ${mean(st.usbBytesOut, st.transfersOut)} (+${st.zlpsOut ?? '?'} ZLPs)`,
      );
    }
  }
  const checkRecords = records.filter((r) => r.kind === 'check');
  const checks = checkRecords.map((r) => ({ name: r.name, ok: r.ok, ...(r.detail ? { detail: r.detail } : {}) }));
  out.push('');
  for (const r of checkRecords) out.push(`check ${r.name}: ${r.ok ? 'ok' : 'FAILED'}${checkDetail(r)}`);
  if (errors.length) {
    out.push('');
    out.push('errors:');
    for (const e of errors) out.push(`  round ${e.round} ${label(e)} ${e.case}: ${e.error}`);
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
    wideWindow: wide ? { window: wideWindow, ...wide, rounds: roundsOf(wideRounds!) } : null,
    severalPhones: several ? { phones, ...several, rounds: roundsOf(severalRounds!) } : null,
    churn: checkRecords.filter((r) => String(r.name).startsWith('churn-')),
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
