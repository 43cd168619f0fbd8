// The machine facts stored beside every result: figures only compare on the
// same CPU, kernel and node.
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

import { native } from '../../src/native/addon.js';

export interface MachineFacts {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  libusb: string;
  /**
   * The 1-, 5- and 15-minute load averages when the run started and when it
   * ended, and the highest 1-minute figure sampled at each round's start:
   * other work on the machine shares the cores with the daemon and the phones.
   */
  load?: { start: number[]; end: number[]; max1m: number };
}

/** Follows the machine's load over a run: sample() at each round, facts() at the end. */
export function loadTracker(): { sample(): number; facts(): NonNullable<MachineFacts['load']> } {
  const round2 = (xs: number[]) => xs.map((x) => Math.round(x * 100) / 100);
  const start = round2(loadavg());
  let max1m = start[0];
  const sample = () => {
    const now = loadavg()[0];
    max1m = Math.max(max1m, now);
    return now;
  };
  return { sample, facts: () => ({ start, end: round2(loadavg()), max1m: Math.round(Math.max(max1m, sample()) * 100) / 100 }) };
}

export function machineFacts(): MachineFacts {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    // not Linux: os.cpus() it is
  }
  return {
    cpu,
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / (1 << 30)),
    kernel: release(),
    node: process.version,
    libusb: native.libusbVersion(),
  };
}
