// What the benchmarks read about the daemon they measure, from /proc (Linux):
// its CPU time and resident memory, and which process owns a Unix socket, so
// `tsmuxd bench` can charge CPU to usbmuxd or tsmuxd alike without being told
// the pid.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const CLOCK_TICKS = 100;  // sysconf(_SC_CLK_TCK) on Linux

/** User + system CPU seconds of a process (its own, not its children's). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * The pid of the process listening on a Unix socket path, or undefined when it
 * cannot be found (not Linux, another user's process without root).
 * /proc/net/unix maps the path to the listening socket's inode; the owner is
 * the process holding an fd that links to `socket:[inode]`.
 */
export function socketOwnerPid(path: string): number | undefined {
  let table: string;
  try {
    table = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return undefined;
  }
  const ACCEPTCON = 0x10000;  // __SO_ACCEPTCON in the Flags column: a listening socket
  const inodes = new Set<string>();
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[7] === path && parseInt(f[3], 16) & ACCEPTCON) inodes.add(f[6]);
  }
  if (inodes.size === 0) return undefined;
  const wanted = new Set([...inodes].map((i) => `socket:[${i}]`));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (wanted.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      } catch {
        // the fd closed while we looked
      }
    }
  }
  return undefined;
}

/** CPU seconds a process spends while `run` runs (null without a pid). */
export async function withCpu<T>(pid: number | undefined, run: () => Promise<T>): Promise<{ value: T; cpu: number | null }> {
  const before = pid === undefined ? 0 : cpuSeconds(pid);
  const value = await run();
  return { value, cpu: pid === undefined ? null : cpuSeconds(pid) - before };
}
