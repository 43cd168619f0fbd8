// Echo `total` random bytes through a socket whose far end echoes (a sim's
// echo service on port 7, through a daemon or a tool such as iproxy), with
// at most 1 MiB in flight: unbounded, a relaying tool that writes one way
// while the other way waits for it deadlocks. Resolves with whether every
// byte came back intact, and how long it took.
import { createHash, randomFillSync } from 'node:crypto';
import type { Socket } from 'node:net';

const MiB = 1024 * 1024;

export async function echo(socket: Socket, total: number): Promise<{ ok: boolean; ms: number }> {
  return new Promise((resolve, reject) => {
    const sentHash = createHash('sha256');
    const gotHash = createHash('sha256');
    let sent = 0;
    let received = 0;
    let blocked = false;
    const started = process.hrtime.bigint();
    const timer = setTimeout(() => reject(new Error(`echo stalled at ${received} of ${total}`)), 120_000);
    const fill = () => {
      while (!blocked && sent < total && sent - received < MiB) {
        const b = randomFillSync(Buffer.allocUnsafe(Math.min(128 * 1024, total - sent)));
        sentHash.update(b);
        sent += b.length;
        if (!socket.write(b)) {
          blocked = true;
          socket.once('drain', () => {
            blocked = false;
            fill();
          });
        }
      }
    };
    socket.on('data', (d: Buffer) => {
      gotHash.update(d);
      received += d.length;
      if (received >= total) {
        clearTimeout(timer);
        resolve({ ok: received === total && sentHash.digest('hex') === gotHash.digest('hex'), ms: Number(process.hrtime.bigint() - started) / 1e6 });
      } else fill();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    fill();
  });
}
