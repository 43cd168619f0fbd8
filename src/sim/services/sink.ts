// Device port 9: a sink that proves what it received. A request is an 8-byte
// big-endian length N followed by N bytes; the answer is the SHA-256 of those
// N bytes. Requests may repeat on one connection.
import { createHash, type Hash } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';

export const DIGEST_LENGTH = 32;

export async function startSink(host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
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
          remaining = header.readBigUInt64BE(0);
          header = Buffer.alloc(0);
          hash = createHash('sha256');
        }
        const take = remaining < BigInt(data.length) ? Number(remaining) : data.length;
        hash!.update(data.subarray(0, take));
        data = data.subarray(take);
        remaining -= BigInt(take);
        if (remaining === 0n) {
          socket.write(hash!.digest());
          remaining = -1n;
          hash = null;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}
