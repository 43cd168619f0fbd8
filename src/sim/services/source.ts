// Device port 19: a source. A request is an 8-byte big-endian length N; the
// answer is N random bytes followed by their SHA-256, so the reader can check
// every byte arrived intact. With the top bit of the length set, the bytes
// come from one fixed random block and the digest is 32 zero bytes.
import { createHash, randomFillSync } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';

import { listenService, type ServiceAddress } from './listen.js';
import { DIGEST_LENGTH, UNHASHED } from './sink.js';

const CHUNK = 256 * 1024;
const FIXED = randomFillSync(Buffer.allocUnsafe(CHUNK));

function stream(socket: Socket, total: bigint, hashed: boolean, done: () => void): void {
  const hash = hashed ? createHash('sha256') : null;
  let left = total;
  const pump = () => {
    while (left > 0n) {
      const n = left < BigInt(CHUNK) ? Number(left) : CHUNK;
      const chunk = hash ? randomFillSync(Buffer.allocUnsafe(n)) : FIXED.subarray(0, n);
      hash?.update(chunk);
      left -= BigInt(n);
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.write(hash ? hash.digest() : Buffer.alloc(DIGEST_LENGTH));
    done();
  };
  pump();
}

export async function startSource(at?: ServiceAddress): Promise<{ server: Server; address: string | number }> {
  const server = createServer((socket) => {
    let header = Buffer.alloc(0);
    let busy = false;
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      if (busy) return;  // one request at a time; extra bytes are ignored
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      const request = header.readBigUInt64BE(0);
      header = Buffer.alloc(0);
      busy = true;
      stream(socket, request & ~UNHASHED, (request & UNHASHED) === 0n, () => {
        busy = false;
      });
    });
  });
  return { server, address: await listenService(server, at) };
}
