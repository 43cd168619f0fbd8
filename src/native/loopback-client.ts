// Plays the usbmuxd client's part without a server: makes a connected pair of
// Unix sockets, connects a mux connection, and hands one end to the engine
// exactly as the daemon hands over a client after Connect. Benchmarks and
// tests use it to push bytes through the real data path.
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';

import type { MuxEngine } from './mux-engine.js';

let pairCounter = 0;

/** A connected pair of Unix stream sockets; `inner` is paused and unread. */
export async function unixSocketPair(dir: string): Promise<{ outer: net.Socket; inner: net.Socket }> {
  const path = join(dir, `pair-${process.pid}-${++pairCounter}.sock`);
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const outer = net.connect(path);
  const [inner] = await accepted;
  server.close();
  await once(outer, 'connect');
  return { outer, inner };
}

/** A client socket whose bytes travel through the mux to `port` on the device. */
export async function openLoopbackClient(
  engine: MuxEngine,
  handle: number,
  port: number,
  dir: string,
  pipelined?: Buffer,
): Promise<{ socket: net.Socket; conn: number }> {
  const { outer, inner } = await unixSocketPair(dir);
  try {
    const conn = await engine.connect(handle, port);
    engine.adoptSocket(conn, inner, pipelined);
    return { socket: outer, conn };
  } catch (err) {
    outer.destroy();
    inner.destroy();
    throw err;
  }
}
