// `tsmuxd bench`: measures whatever usbmuxd-compatible daemon answers on the
// socket (Apple's, libimobiledevice's or ours) with a simulated phone's
// measuring services, or AFC and lockdown on a real phone. The cable and lab
// benchmarks (bench/) are built on this same client.
import { writeFileSync } from 'node:fs';

import { describeDaemon } from '../../bench/daemon-identity.js';
import type { BenchRecord, DaemonRecord } from '../../bench/records.js';
import { summarize, summaryTable, throughputChart } from '../../bench/report.js';
import { BENCH_CASES, runBench, type BenchCase } from '../../bench/run.js';
import { COMMON_HELP, COMMON_OPTIONS, daemonAddress, parseCommandArgs, UsageError } from './common.js';
import { parseSize } from '../../util/size.js';

const HELP = `usage: tsmuxd bench [--socket ADDR] [--udid UDID] [--bytes N] [--repeats R]
                    [--cases LIST] [--quick] [--json] [--out FILE]

Measures the daemon on the socket from the client side. With a simulated
phone (tsmuxd --sim, tsmuxd sim): throughput to its sink and from its source
over 1, 4 and 16 connections and over all listed phones at once, 64-byte echo
round trips, the Connect rate and the daemon's memory per idle connection.
With a real phone: AFC file upload and download and lockdown round trips.
Any usbmuxd: tsmuxd, libimobiledevice's, Apple's on macOS (/var/run/usbmuxd)
and Windows (Apple Mobile Device Service, 127.0.0.1:27015). The daemon's CPU
time comes from /proc (Linux), ps (macOS) or Get-Process (Windows) when its
pid is known: given, the socket's owner (Linux), or the platform's usbmuxd
by name; where it cannot be read the CPU columns stay empty. JS wakeups when
it is tsmuxd. The results start with which daemon was measured: its name,
version, BUID and pid, and the platform (with --json: a "kind":"daemon" line).

      --udid UDID         measure this phone (default: the first; all for 'devices')
      --bytes N           bytes per throughput figure (default 256M; K, M, G suffixes)
      --repeats R         repeat each figure R times (default 3)
      --cases LIST        comma list of ${BENCH_CASES.join(', ')} (default: all)
      --parallel LIST     connection counts of 'parallel' (default 4,16)
      --rtt-count N       round trips per RTT figure (default 2000)
      --connect-seconds S length of each Connect-rate figure (default 3)
      --connect-count N   each Connect-rate figure is N cycles in all instead (shared by the loops)
      --connect-echo      each Connect cycle sends one byte to the echo port (7) and reads
                          it back before closing (cycle times p50/p99 are reported either way)
      --concurrency N     concurrent Connect loops (default 8)
      --idle N            idle connections (default 10000)
      --daemon-pid PID    charge CPU to this process (default: the socket's owner, or
                          usbmuxd / AppleMobileDeviceService by name)
      --quick             small sizes, one repeat: checks that everything runs
      --out FILE          also write the records and summary as JSON
${COMMON_HELP}`;

/** parseSize for a command-line option: a bad size is a usage error. */
export function parseSizeOption(text: string): number {
  try {
    return parseSize(text);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} needs a positive number, not '${text}'`);
  return n;
}

function wholeNumber(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} needs a whole number above 0, not '${text}'`);
  return n;
}

function parseCases(text: string | undefined): Set<BenchCase> {
  if (text === undefined) return new Set(BENCH_CASES);
  const cases = text.split(',').map((c) => c.trim()).filter(Boolean);
  for (const c of cases) {
    if (!(BENCH_CASES as readonly string[]).includes(c)) throw new UsageError(`unknown case '${c}' (cases: ${BENCH_CASES.join(', ')})`);
  }
  return new Set(cases as BenchCase[]);
}

export async function runBenchCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      udid: { type: 'string', short: 'u' },
      bytes: { type: 'string' },
      repeats: { type: 'string' },
      cases: { type: 'string' },
      parallel: { type: 'string' },
      'rtt-count': { type: 'string' },
      'connect-seconds': { type: 'string' },
      'connect-count': { type: 'string' },
      'connect-echo': { type: 'boolean' },
      concurrency: { type: 'string' },
      idle: { type: 'string' },
      'daemon-pid': { type: 'string' },
      quick: { type: 'boolean' },
      out: { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const quick = values.quick ?? false;
  const json = values.json ?? false;
  const records: BenchRecord[] = [];
  const address = daemonAddress(values.socket);
  const parallel = (values.parallel ?? '4,16').split(',').map((n) => positive('parallel', n, 1));
  let daemon: DaemonRecord | undefined;
  await runBench({
    address,
    udid: values.udid,
    bytes: values.bytes ? parseSizeOption(values.bytes) : quick ? 16 << 20 : 256 << 20,
    repeats: positive('repeats', values.repeats, quick ? 1 : 3),
    cases: parseCases(values.cases),
    parallel,
    rttCount: positive('rtt-count', values['rtt-count'], quick ? 200 : 2000),
    connectSeconds: positive('connect-seconds', values['connect-seconds'], quick ? 1 : 3),
    connectCount: values['connect-count'] === undefined ? undefined : wholeNumber('connect-count', values['connect-count']),
    connectEcho: values['connect-echo'] ?? false,
    connectConcurrency: positive('concurrency', values.concurrency, 8),
    idleConnections: positive('idle', values.idle, quick ? 500 : 10_000),
    daemonPid: values['daemon-pid'] ? positive('daemon-pid', values['daemon-pid'], 0) : undefined,
    onDaemon(record) {
      daemon = record;
      // First, so that a stream of figures never lacks which daemon made them.
      if (json) process.stdout.write(`${JSON.stringify(record)}\n`);
    },
    emit(record) {
      records.push(record);
      if (json) process.stdout.write(`${JSON.stringify(record)}\n`);
    },
    log(line) {
      process.stderr.write(`bench: ${line}\n`);
    },
  });
  const summary = summarize(records);
  const measured = daemon ? `daemon: ${describeDaemon(daemon)}\n\n` : '';
  if (!json) process.stdout.write(`${measured}${summaryTable(summary)}\n\n${throughputChart(summary)}\n`);
  if (values.out) writeFileSync(values.out, `${JSON.stringify({ date: new Date().toISOString(), daemon, records, summary }, null, 2)}\n`);
  return 0;
}
