// Echo random bytes through something whose far end echoes (a sim's echo
// service on port 7, through a daemon or a tool such as iproxy), hashed both
// ways, with a bounded amount in flight.
import { createHash, randomFillSync } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

const MiB = 1024 * 1024;

export interface EchoResult {
  sent: string;
  received: string;
  bytes: number;
  ms: number;
}

/**
 * Writes `total` random bytes to `out` and reads their echo from `inp`,
 * keeping at most `window` bytes in flight. The bound matters: iproxy and
 * inetcat relay with one thread doing blocking writes, so with unbounded
 * in-flight data the loop (client -> tool -> daemon -> phone -> echo -> daemon
 * -> tool) fills every buffer and the tool blocks writing one way while the
 * other way waits for it to read - a deadlock of the tool, with any usbmuxd.
 */
export function echoWindowed(out: Writable, inp: Readable, total: number, window: number, chunk: number, timeoutMs: number): Promise<EchoResult> {
  return new Promise((resolve, reject) => {
    const sentHash = createHash('sha256');
    const gotHash = createHash('sha256');
    let sent = 0;
    let received = 0;
    let blocked = false;
    let done = false;
    const started = process.hrtime.bigint();
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      inp.off('data', onData);
      if (err) {
        reject(err);
        return;
      }
      resolve({
        sent: sentHash.digest('hex'),
        received: gotHash.digest('hex'),
        bytes: received,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      });
    };
    const timer = setTimeout(
      () => finish(new Error(`echo stalled: sent ${sent}, received ${received} of ${total} after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const fill = () => {
      while (!done && !blocked && sent < total) {
        const n = Math.min(chunk, total - sent);
        if (sent + n - received > window) return;
        const b = randomFillSync(Buffer.allocUnsafe(n));
        sentHash.update(b);
        sent += n;
        if (!out.write(b)) {
          blocked = true;
          out.once('drain', () => {
            blocked = false;
            fill();
          });
        }
      }
    };
    const onData = (d: Buffer) => {
      gotHash.update(d);
      received += d.length;
      if (received > total) finish(new Error(`received ${received} bytes, more than the ${total} sent`));
      else if (received === total) finish();
      else fill();
    };
    inp.on('data', onData);
    inp.once('end', () => finish(new Error(`the stream ended after ${received} of ${total} bytes`)));
    inp.once('error', (err) => finish(err));
    out.once('error', (err) => finish(err));
    fill();
  });
}

/** echoWindowed over one socket, 1 MiB in flight: whether every byte came back intact, and how long it took. */
export async function echo(socket: Socket, total: number): Promise<{ ok: boolean; ms: number }> {
  const r = await echoWindowed(socket, socket, total, MiB, 128 * 1024, 120_000);
  return { ok: r.bytes === total && r.sent === r.received, ms: r.ms };
}
