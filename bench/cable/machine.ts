// The machine facts stored beside every result: figures only compare on the
// same CPU, kernel and node.
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

import { native } from '../../src/native/addon.js';

export interface MachineFacts {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  libusb: string;
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
