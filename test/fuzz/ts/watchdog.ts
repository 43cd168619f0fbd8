// A parser stuck in a loop never returns to the fuzz loop, so a timer there
// cannot catch it. A worker thread watches a heartbeat instead; when it
// stops, the worker saves the input being run (kept in shared memory) and
// kills the process.
import { Worker } from 'node:worker_threads';

const MAX_KEPT = 256 * 1024;

const WORKER = `
const { workerData } = require('node:worker_threads');
const { mkdirSync, writeFileSync, writeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const beat = new Int32Array(workerData.sab, 0, 2);
const bytes = new Uint8Array(workerData.sab, 8);
let last = -1;
setInterval(() => {
  const now = Atomics.load(beat, 0);
  if (now !== last || Atomics.load(beat, 1) < 0) { last = now; return; }
  const input = Buffer.from(bytes.subarray(0, Atomics.load(beat, 1)));
  mkdirSync(workerData.dir, { recursive: true });
  const file = workerData.dir + '/hang-' + createHash('sha1').update(input).digest('hex').slice(0, 16);
  writeFileSync(file, input);
  writeFileSync(file + '.txt', 'no progress for ' + workerData.ms + ' ms on this input\\n');
  // process.stderr in a worker goes through the main thread, which is stuck.
  writeSync(2, 'fuzz: HANG on an input, saved to ' + file + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, workerData.ms);
`;

export class Watchdog {
  private readonly sab = new SharedArrayBuffer(8 + MAX_KEPT);
  private readonly beat = new Int32Array(this.sab, 0, 2);
  private readonly bytes = new Uint8Array(this.sab, 8);
  private readonly worker: Worker;

  constructor(dir: string, ms = 10_000) {
    Atomics.store(this.beat, 1, -1);
    this.worker = new Worker(WORKER, { eval: true, workerData: { sab: this.sab, dir, ms } });
    this.worker.unref();
  }

  /** Marks progress and records the input about to run. */
  running(input: Buffer): void {
    const n = Math.min(input.length, MAX_KEPT);
    this.bytes.set(input.subarray(0, n));
    Atomics.store(this.beat, 1, n);
    Atomics.add(this.beat, 0, 1);
  }

  /** Nothing is running (between targets): no hang to report. */
  idle(): void {
    Atomics.store(this.beat, 1, -1);
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}
