// Device port 19: a source. A request is an 8-byte big-endian length N; the
// answer is N random bytes followed by their SHA-256, so the reader can check
// every byte arrived intact.
import { createHash, randomFillSync } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

const CHUNK = 256 * 1024;

function stream(socket: Socket, total: bigint, done: () => void): void {
  const hash = createHash('sha256');
  let left = total;
  const pump = () => {
    while (left > 0n) {
      const n = left < BigInt(CHUNK) ? Number(left) : CHUNK;
      const chunk = randomFillSync(Buffer.allocUnsafe(n));
      hash.update(chunk);
      left -= BigInt(n);
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.write(hash.digest());
    done();
  };
  pump();
}

export async function startSource(host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    let header = Buffer.alloc(0);
    let busy = false;
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      if (busy) return;  // one request at a time; extra bytes are ignored
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      const total = header.readBigUInt64BE(0);
      header = Buffer.alloc(0);
      busy = true;
      stream(socket, total, () => {
        busy = false;
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}
