// Pull-style reading from a socket, so AFC code on either end can be written
// as "read 40 bytes, then this many, then stream the rest". The stream is
// paused while more than `highWater` bytes wait unread: a peer that sends a
// 1 GiB FILE_WRITE is held back by TCP instead of filling our memory.
import type { Readable, Writable } from 'node:stream';

import { AfcError } from './protocol.js';

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** Bytes a pending readExactly waits for: no pausing below that, or a big read would stall. */
  private wanted = 0;

  constructor(
    private readonly stream: Readable,
    private readonly highWater = 1024 * 1024,
  ) {
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered >= Math.max(this.highWater, this.wanted)) stream.pause();
      this.notify();
    });
    stream.on('end', () => this.finish());
    stream.on('close', () => this.finish());
    stream.on('error', (err) => {
      this.failure ??= err;
      this.finish();
    });
    // A socket handed over paused (UsbmuxClient.connect does so) stays
    // paused when a 'data' listener is added; ask for the bytes explicitly.
    stream.resume();
  }

  /** Bytes received and not yet taken. */
  get available(): number {
    return this.buffered;
  }

  /**
   * Exactly `n` bytes; null when the stream ended cleanly before the first
   * of them (a peer that hung up between packets). Ending part-way is an error.
   */
  async readExactly(n: number): Promise<Buffer | null> {
    this.wanted = n;
    try {
      while (this.buffered < n) {
        if (this.ended) {
          if (this.buffered === 0 && n > 0) return null;
          throw this.closedError(`stream ended ${n - this.buffered} bytes short`);
        }
        await this.waitForData();
      }
    } finally {
      this.wanted = 0;
    }
    return this.take(n);
  }

  /**
   * Between 1 and `max` bytes, as soon as any are there (all that is
   * buffered, up to `max`, so consumers make few large writes); throws if
   * the stream has ended.
   */
  async readSome(max: number): Promise<Buffer> {
    while (this.buffered === 0) {
      if (this.ended) throw this.closedError('stream ended');
      await this.waitForData();
    }
    return this.take(Math.min(max, this.buffered));
  }

  private closedError(message: string): Error {
    return this.failure ?? new AfcError('ERR_AFC_CLOSED', message);
  }

  private take(n: number): Buffer {
    let out: Buffer;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first!.length >= n) {
      out = first!.subarray(0, n);
      if (first!.length === n) this.chunks.shift();
      else this.chunks[0] = first!.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, k);
        filled += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    if (this.buffered < this.highWater && this.stream.isPaused() && !this.ended) this.stream.resume();
    return out;
  }

  private waitForData(): Promise<void> {
    if (this.stream.isPaused() && !this.ended) this.stream.resume();
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private finish(): void {
    this.ended = true;
    this.notify();
  }
}

/** Writes `parts` in order and resolves once the stream would take more (or rejects if it closes first). */
export async function writeParts(stream: Writable, parts: readonly Buffer[]): Promise<void> {
  if (stream.destroyed || !stream.writable) throw new AfcError('ERR_AFC_CLOSED', 'connection closed');
  let ready = true;
  for (const p of parts) ready = stream.write(p);
  if (ready) return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new AfcError('ERR_AFC_CLOSED', 'connection closed while writing'));
    stream.on('drain', onDrain);
    stream.on('close', onClose);
  });
}
