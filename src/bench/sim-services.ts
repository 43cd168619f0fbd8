// Talking to the simulated phone's measuring services (src/sim/services):
// the sink on device port 9 and the source on port 19 take an 8-byte
// big-endian length (top bit set: count, don't hash) and answer 32 bytes
// after the payload; the echo on port 7 sends back what it gets.
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import type { Socket } from 'node:net';

import { DIGEST_LENGTH, UNHASHED } from '../protocol/measuring.js';

export { ECHO_PORT, SINK_PORT, SOURCE_PORT } from '../protocol/sim-ports.js';

const MiB = 1 << 20;
const BLOCK = randomFillSync(Buffer.allocUnsafe(MiB));

function requestHeader(total: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(total) | UNHASHED);
  return header;
}

/** Resolves once `n` more bytes have arrived (kept nowhere). */
function drain(socket: Socket, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = n;
    const done = (err?: Error) => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onData = (chunk: Buffer) => {
      left -= chunk.length;
      if (left <= 0) done();
    };
    const onClose = () => done(new Error(`connection closed with ${left} of ${n} bytes outstanding`));
    const onError = (err: Error) => done(err);
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.resume();
  });
}

/** Sends `total` bytes to a sink and waits for its answer. */
export async function upload(socket: Socket, total: number): Promise<void> {
  const answered = drain(socket, DIGEST_LENGTH);
  socket.write(requestHeader(total));
  for (let sent = 0; sent < total; ) {
    const n = Math.min(BLOCK.length, total - sent);
    sent += n;
    if (!socket.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) {
      await Promise.race([once(socket, 'drain'), answered]);
    }
  }
  await answered;
}

/** Asks a source for `total` bytes and reads them all. */
export async function download(socket: Socket, total: number): Promise<void> {
  const done = drain(socket, total + DIGEST_LENGTH);
  socket.write(requestHeader(total));
  await done;
}

/** `count` round trips of `size` bytes through an echo; each one's time in ms. */
export async function pingPong(socket: Socket, count: number, size = 64): Promise<number[]> {
  socket.setNoDelay(true);
  const payload = randomFillSync(Buffer.allocUnsafe(size));
  const times: number[] = [];
  return new Promise((resolve, reject) => {
    let got = 0;
    let started = 0n;
    const send = () => {
      got = 0;
      started = process.hrtime.bigint();
      socket.write(payload);
    };
    const finish = (err?: Error) => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', finish);
      if (err) reject(err);
      else resolve(times);
    };
    const onData = (chunk: Buffer) => {
      got += chunk.length;
      if (got < size) return;
      if (got > size) return finish(new Error(`echo sent ${got} bytes for ${size}`));
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (times.length === count) finish();
      else send();
    };
    const onClose = () => finish(new Error(`echo closed after ${times.length} of ${count} round trips`));
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', finish);
    send();
  });
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
