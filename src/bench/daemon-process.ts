// The measured daemon as a process, on every platform a usbmuxd runs on: its
// CPU time and memory, finding it by name, and its executable. Linux reads
// /proc (proc.ts); macOS and the BSDs ask ps; Windows asks PowerShell's
// Get-Process. Every reading is best-effort: null means "cannot be read
// here" (another user's process, a tool that is missing), never zero, so a
// column that cannot be measured stays empty.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

import { cpuSeconds as procCpuSeconds, rssBytes as procRssBytes } from './proc.js';

/** Runs a program to completion: its stdout, or null when it cannot run or fails. */
export type Exec = (file: string, args: string[]) => string | null;

/** ps and PowerShell answer in well under this; a hung one must not hang the bench. */
const PROBE_TIMEOUT_MS = 5_000;
/** What a probe may print: a number, a path, a version line, or a few pids. */
const PROBE_OUTPUT_CAP = 64 * 1024;

/**
 * The environment a probe runs in: ours without LD_PRELOAD, which is for
 * this process (the sanitizer runtime under test:asan), not for ps or
 * pgrep; procps's pgrep hangs with ASan preloaded.
 */
function probeEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return env;
}

export const runProgram: Exec = (file, args) => {
  try {
    return execFileSync(file, args, {
      env: probeEnv(),
      encoding: 'utf8',
      timeout: PROBE_TIMEOUT_MS,
      maxBuffer: PROBE_OUTPUT_CAP,
      stdio: ['ignore', 'pipe', 'ignore'],
      windowsHide: true,
    });
  } catch {
    return null;
  }
};

export interface ProcessProbe {
  /** Where the CPU time comes from, for the results: '/proc/PID/stat', 'ps -o time=', 'Get-Process'. */
  readonly cpuFrom: string;
  /** User + system CPU seconds so far, or null when it cannot be read. */
  cpuSeconds(pid: number): number | null;
  /** Resident set size (the working set on Windows), or null. */
  rssBytes(pid: number): number | null;
  /** The pids of processes whose executable is called `name` (no extension). */
  pidsNamed(name: string): number[];
  /** The executable's path (or at least its name), or null. */
  executable(pid: number): string | null;
  /** Its arguments, argv[0] first (Linux only: where tsmuxd runs), or null. */
  commandLine(pid: number): string[] | null;
}

/**
 * ps's TIME column as seconds: `[[DD-]HH:]MM:SS[.ss]` (Linux procps prints
 * `00:01:02` or `1-02:03:04`, macOS `1:02.34` with minutes past 59). NaN
 * when it is none of these.
 */
export function parsePsTime(text: string): number {
  const m = /^\s*(?:(\d+)-)?((?:\d+:){1,2}\d+(?:\.\d+)?)\s*$/.exec(text);
  if (!m) return NaN;
  const seconds = m[2]!.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
  return Number(m[1] ?? 0) * 86_400 + seconds;
}

const firstLine = (out: string | null): string | null => {
  const line = out?.split(/\r?\n/).find((l) => l.trim())?.trim();
  return line ? line : null;
};

const pidList = (out: string | null): number[] =>
  (out ?? '').split(/\s+/).filter((w) => /^\d+$/.test(w)).map(Number);

function linuxProbe(): ProcessProbe {
  const orNull = <T>(read: () => T): T | null => {
    try {
      return read();
    } catch {
      return null;
    }
  };
  const commandLine = (pid: number) =>
    orNull(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a, i, all) => a || i < all.length - 1));
  return {
    cpuFrom: '/proc/PID/stat',
    cpuSeconds: (pid) => orNull(() => procCpuSeconds(pid)),
    rssBytes: (pid) => orNull(() => procRssBytes(pid)),
    pidsNamed(name) {
      const pids: number[] = [];
      for (const entry of orNull(() => readdirSync('/proc')) ?? []) {
        if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
        // comm is cut at 15 bytes, hence the full name from cmdline too.
        if (orNull(() => readFileSync(`/proc/${entry}/comm`, 'utf8').trim()) === name.slice(0, 15)) {
          const argv0 = commandLine(Number(entry))?.[0];
          if (!argv0 || argv0.split('/').pop() === name) pids.push(Number(entry));
        }
      }
      return pids;
    },
    // exe is unreadable in another user's process (root's usbmuxd); cmdline is not.
    executable: (pid) => orNull(() => readlinkSync(`/proc/${pid}/exe`)) ?? commandLine(pid)?.[0] ?? null,
    commandLine,
  };
}

/** macOS and the BSDs: POSIX ps and pgrep, which also read other users' processes. */
function psProbe(exec: Exec): ProcessProbe {
  const ps = (field: string, pid: number) => firstLine(exec('ps', ['-o', `${field}=`, '-p', String(pid)]));
  return {
    cpuFrom: 'ps -o time=',
    cpuSeconds(pid) {
      const s = parsePsTime(ps('time', pid) ?? '');
      return Number.isFinite(s) ? s : null;
    },
    rssBytes(pid) {
      const kib = Number(ps('rss', pid) ?? NaN);
      return Number.isFinite(kib) && kib > 0 ? kib * 1024 : null;
    },
    pidsNamed: (name) => pidList(exec('pgrep', ['-x', name])),
    // macOS prints the whole path in comm.
    executable: (pid) => ps('comm', pid),
    commandLine: () => null,
  };
}

/**
 * Windows: Get-Process. TotalProcessorTime's Ticks (100 ns, an integer) avoid
 * the decimal comma of some locales; for a service of another account it is
 * empty without an elevated prompt, which reads as null.
 */
function windowsProbe(exec: Exec): ProcessProbe {
  const powershell = (command: string) =>
    firstLine(exec('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', command]));
  const integer = (text: string | null) => (text !== null && /^\d+$/.test(text) ? Number(text) : null);
  return {
    cpuFrom: 'Get-Process TotalProcessorTime',
    cpuSeconds(pid) {
      const ticks = integer(powershell(`(Get-Process -Id ${pid} -ErrorAction Stop).TotalProcessorTime.Ticks`));
      return ticks === null ? null : ticks / 1e7;
    },
    rssBytes: (pid) => integer(powershell(`(Get-Process -Id ${pid} -ErrorAction Stop).WorkingSet64`)),
    pidsNamed(name) {
      if (!/^[\w.-]+$/.test(name)) return [];
      return pidList(exec('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', `(Get-Process -Name '${name}' -ErrorAction SilentlyContinue).Id`]));
    },
    executable: (pid) => powershell(`(Get-Process -Id ${pid} -ErrorAction Stop).Path`),
    commandLine: () => null,
  };
}

/** One daemon's CPU seconds and memory so far; null where they cannot be read. */
export interface DaemonMeter {
  /** Whether cpuSeconds gives numbers at all (asked once: PowerShell takes a while to start). */
  readonly cpuReadable: boolean;
  cpuSeconds(): number | null;
  rssBytes(): number | null;
}

/**
 * A meter on `pid`. A CPU time that cannot be read at the start stays null
 * throughout, so a column is empty rather than half filled.
 */
export function daemonMeter(probe: ProcessProbe, pid: number): DaemonMeter {
  const cpuReadable = probe.cpuSeconds(pid) !== null;
  return { cpuReadable, cpuSeconds: cpuReadable ? () => probe.cpuSeconds(pid) : () => null, rssBytes: () => probe.rssBytes(pid) };
}

/** CPU seconds since `before`; null when either reading is missing (never a made-up zero). */
export function cpuSince(meter: DaemonMeter | undefined, before: number | null): number | null {
  if (!meter || before === null) return null;
  const after = meter.cpuSeconds();
  return after === null ? null : after - before;
}

/** The probe for a platform (the running one unless a test says otherwise). */
export function processProbe(platform: NodeJS.Platform = process.platform, exec: Exec = runProgram): ProcessProbe {
  if (platform === 'linux') return linuxProbe();
  if (platform === 'win32') return windowsProbe(exec);
  return psProbe(exec);
}
