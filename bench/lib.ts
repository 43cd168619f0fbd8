// Shared pieces of the benchmarks: a simulated phone in its own process, CPU
// accounting from /proc, and the sink/source transfer loops.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { packageRoot } from '../src/native.js';
import { DIGEST_LENGTH, UNHASHED } from '../src/sim/services/sink.js';

export const MiB = 1 << 20;
export const GiB = 1 << 30;

export interface DeviceProcess {
  child: ChildProcess;
  services: Record<number, string | number>;
}

export async function spawnDevice(cable: string, socketDir: string, args: string[] = []): Promise<DeviceProcess> {
  const script = join(packageRoot, 'dist', 'src', 'sim', 'peer-main.js');
  const child = spawn(process.execPath, [script, '--cable', cable, '--socket-dir', socketDir, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, 'line')) as [string];
  const status = JSON.parse(line) as { ready: boolean; services: Record<number, string | number> };
  if (!status.ready) throw new Error(`device process said ${line}`);
  return { child, services: status.services };
}

const CLOCK_TICKS = 100;  // sysconf(_SC_CLK_TCK) on Linux

/** User + system CPU seconds of a process, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function requestHeader(total: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(total) | UNHASHED);
  return header;
}

/** Reads until `n` more bytes have arrived; returns nothing, keeps no data. */
function drain(socket: Socket, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = n;
    const onData = (chunk: Buffer) => {
      left -= chunk.length;
      if (left <= 0) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve();
      }
    };
    const onClose = () => reject(new Error(`socket closed with ${left} bytes outstanding`));
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.resume();
  });
}

const BLOCK = randomFillSync(Buffer.allocUnsafe(MiB));

/** Sends `total` bytes to a sink and waits for its answer. */
export async function upload(socket: Socket, total: number): Promise<void> {
  const answered = drain(socket, DIGEST_LENGTH);
  socket.write(requestHeader(total));
  for (let sent = 0; sent < total; ) {
    const n = Math.min(BLOCK.length, total - sent);
    sent += n;
    if (!socket.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) await once(socket, 'drain');
  }
  await answered;
}

/** Asks a source for `total` bytes and reads them all. */
export async function download(socket: Socket, total: number): Promise<void> {
  const done = drain(socket, total + DIGEST_LENGTH);
  socket.write(requestHeader(total));
  await done;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
