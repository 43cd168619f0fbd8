// Pins the two Node internals the daemon relies on (docs/architecture.md,
// "Node internals"), so that a Node upgrade that changes them fails here, with
// a message naming the internal and the Node version, instead of somewhere in
// the Connect path:
//  - net.Socket#_handle.fd: the fd src/native/mux-engine.ts adoptSocket hands
//    to native code after a Connect (and src/server/access.ts reads
//    SO_PEERCRED from);
//  - net.Socket#_handle.reading / readStop(): how src/server/socket-reading.ts
//    stops reading a client at the kernel.
//    Two things in node's stream would undo a bare readStop() on Node 20 (a
//    read more from maybeReadMore after a stop in a 'data' handler, and no
//    restart on resume after a stop while idle); both cases are checked.
import { once } from 'node:events';
import { fstatSync, mkdtempSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import t, { type Test } from 'tap';

import { resumeReading, stopReading } from '../src/server/socket-reading.js';

const NODE = `Node ${process.version}`;

const MiB = 1024 * 1024;

interface InternalHandle {
  fd?: unknown;
  reading?: unknown;
  readStop?: unknown;
  readStart?: unknown;
}
const handleOf = (socket: net.Socket) => (socket as unknown as { _handle?: InternalHandle | null })._handle;

type Kind = 'unix' | 'tcp';

/** A connected pair: `server` is the accepted socket (what the daemon holds), `client` its peer. */
async function connectedPair(t: Test, kind: Kind): Promise<{ server: net.Socket; client: net.Socket }> {
  const listener = net.createServer();
  let path: string | undefined;
  if (kind === 'unix') {
    const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-internals-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    path = join(dir, 's.sock');
    listener.listen(path);
  } else {
    listener.listen(0, '127.0.0.1');
  }
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
  const client = kind === 'unix' ? net.connect(path!) : net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  const [server] = await accepted;
  t.teardown(() => {
    server.destroy();
    client.destroy();
    listener.close();
  });
  return { server, client };
}

/** Resolves with the first `n` bytes that arrive on `socket`. */
function readBytes(socket: net.Socket, n: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const timer = setTimeout(() => {
      socket.off('data', onData);
      reject(new Error(`${what}: ${have} of ${n} bytes after 10 s`));
    }, 10_000);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= n) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
  });
}

for (const kind of ['unix', 'tcp'] as const) {
  t.test(`${kind}: a connected net.Socket's _handle.fd is that socket's fd`, async (t) => {
    // Two pairs, so that "the fd is a socket" cannot pass with the wrong one.
    const a = await connectedPair(t, kind);
    const b = await connectedPair(t, kind);
    for (const [name, socket, peer, other] of [
      ['accepted socket', a.server, a.client, b.client],
      ['connecting socket', a.client, a.server, b.server],
    ] as const) {
      const fd = handleOf(socket)?.fd;
      if (!(typeof fd === 'number' && Number.isInteger(fd) && fd >= 0)) {
        t.fail(
          `${NODE}: net.Socket#_handle.fd of a connected ${kind} ${name} is ${JSON.stringify(fd)}, not a non-negative integer; ` +
            'src/native/mux-engine.ts adoptSocket (the fd handover after Connect) and src/server/access.ts peerCredentialsOf need it',
        );
        continue;
      }
      t.ok(fstatSync(fd).isSocket(), `${NODE}: _handle.fd ${fd} of the ${kind} ${name} is a socket (fstat)`);
      // The real proof: bytes written to the fd arrive at this socket's peer, not another's.
      const marker = Buffer.from(`${kind} ${name} fd ${fd} ${process.pid}`);
      let strayBytes = 0;
      const stray = (chunk: Buffer) => (strayBytes += chunk.length);
      other.on('data', stray);
      const got = readBytes(peer, marker.length, `the peer of the ${kind} ${name}`);
      t.equal(writeSync(fd, marker), marker.length, `fs.writeSync(_handle.fd) takes the ${marker.length} bytes`);
      t.same(
        await got,
        marker,
        `${NODE}: bytes written to net.Socket#_handle.fd (${fd}) arrive at the ${kind} ${name}'s peer, so the fd is that socket's`,
      );
      await sleep(50);
      other.off('data', stray);
      t.equal(strayBytes, 0, `and none arrive at another connection's peer`);
    }
  });

  for (const when of ['from the data handler', 'while idle'] as const) {
    t.test(`${kind}: stopReading() ${when} stops reading at the kernel, resumeReading() restarts it`, async (t) => {
      const { server, client } = await connectedPair(t, kind);
      const handle = handleOf(server);
      const where = 'src/server/socket-reading.ts';
      t.equal(typeof handle?.readStop, 'function', `${NODE}: net.Socket#_handle.readStop is a function (${where} calls it)`);
      t.equal(handle?.reading, true, `${NODE}: net.Socket#_handle.reading is true while the socket is read (${where} keeps it)`);

      // 'from the data handler' is what src/server/client-session.ts does
      // (stop on the chunk that brought a request); 'while idle', before any.
      const first = when === 'while idle' ? Buffer.alloc(0) : Buffer.from('request');
      let received = 0;
      const stopped = new Promise<void>((resolve) => {
        server.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received === first.length) {
            stopReading(server);
            resolve();
          }
        });
      });
      if (first.length > 0) {
        client.write(first);
        await stopped;
      } else {
        stopReading(server);
      }
      await sleep(0);
      t.equal(handle?.reading, false, `${NODE}: after stopReading() _handle.reading is false (and stays so a tick later)`);
      // Loopback TCP buffers a few MiB in the kernel; a unix socket a few hundred KiB.
      const total = kind === 'unix' ? 1 * MiB : 32 * MiB;
      const sent = Buffer.alloc(total, 0x5a);
      client.write(sent);
      // Give the kernel and node's event loop time to move whatever they would.
      await sleep(300);
      t.equal(received, first.length, `${NODE}: no 'data' while stopped`);
      t.equal(
        server.bytesRead,
        first.length,
        `${NODE}: nothing more was read from the kernel while stopped (bytesRead ${server.bytesRead}, expected ${first.length}; ` +
          `if more, node restarted the handle behind ${where} stopReading(), or readStop() no longer stops it)`,
      );
      t.ok(
        client.writableLength > 0,
        `${NODE}: the peer's ${total / MiB} MiB backed up (${client.writableLength} bytes still queued at the writer) ` +
          'because the stopped socket leaves its bytes in the kernel',
      );

      const all = readBytes(server, total, `resumeReading() on the ${kind} socket`);
      resumeReading(server);
      const got = await all.catch((err: Error) => {
        t.fail(`${NODE}: ${where} resumeReading() did not restart reading: ${err.message}`);
        return undefined;
      });
      if (got) {
        t.equal(got.length, total, `${NODE}: after resumeReading() all ${total / MiB} MiB arrive`);
        t.ok(got.equals(sent), 'intact');
      }
      t.equal(handle?.reading, true, `${NODE}: and _handle.reading is true again`);
    });
  }
}
