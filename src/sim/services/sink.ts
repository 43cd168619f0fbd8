// Device port 9: a sink that proves what it received. A request is an 8-byte
// big-endian length N followed by N bytes; the answer is the SHA-256 of those
// N bytes. With the top bit of the length set, the bytes are only counted and
// the answer is 32 zero bytes (for benchmarks, where hashing would be the
// bottleneck). Requests may repeat on one connection.
import { createHash, type Hash } from 'node:crypto';
import { createServer, type Server } from 'node:net';

import { listenService, type ServiceAddress } from './listen.js';

export const DIGEST_LENGTH = 32;
export const UNHASHED = 1n << 63n;

export async function startSink(at?: ServiceAddress): Promise<{ server: Server; address: string | number }> {
  const server = createServer((socket) => {
    let header = Buffer.alloc(0);
    let remaining = -1n;
    let hash: Hash | null = null;
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      let data = chunk;
      while (data.length > 0) {
        if (remaining < 0n) {
          const need = 8 - header.length;
          header = Buffer.concat([header, data.subarray(0, need)]);
          data = data.subarray(need);
          if (header.length < 8) return;
          const request = header.readBigUInt64BE(0);
          header = Buffer.alloc(0);
          hash = request & UNHASHED ? null : createHash('sha256');
          remaining = request & ~UNHASHED;
          if (remaining === 0n) {
            socket.write(hash ? hash.digest() : Buffer.alloc(DIGEST_LENGTH));
            remaining = -1n;
            continue;
          }
        }
        const take = remaining < BigInt(data.length) ? Number(remaining) : data.length;
        hash?.update(data.subarray(0, take));
        data = data.subarray(take);
        remaining -= BigInt(take);
        if (remaining === 0n) {
          socket.write(hash ? hash.digest() : Buffer.alloc(DIGEST_LENGTH));
          remaining = -1n;
          hash = null;
        }
      }
    });
  });
  return { server, address: await listenService(server, at) };
}
