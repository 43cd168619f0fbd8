// Stops and restarts reading a client's socket at the kernel, not just at
// the stream. `socket.pause()` alone only stops 'data' events: node keeps
// reading until its stream buffer passes the high-water mark, so one more
// read of up to 64 KiB lands in our memory after every pause. Stopping the
// handle leaves what the client sends next in the kernel's socket buffer,
// where it counts against the client, and where the native data path finds
// it when the fd is handed over after a Connect.
//
// This uses the same handle fields that net.Socket's own pause() uses for
// sockets opened with `onread` (lib/net.js): `reading`, readStop() and
// readStart(). Two things in node's stream would undo a bare readStop(),
// both seen on Node 20 (test/node-internals.test.ts pins all of this):
//  - called from a 'data' handler, Readable's maybeReadMore asks for more on
//    the next tick, and Socket#_read restarts the handle: one more read of up
//    to 64 KiB. So while stopped, the socket's _read does nothing.
//  - called when the stream is waiting for data (no 'data' in hand), the
//    stream still counts that read as outstanding, and resume() never calls
//    _read again. So resumeReading() restarts the handle itself.
// Should a future node hide these, the socket is still paused at the stream,
// and only the 64 KiB bound loosens.
import type { Socket } from 'node:net';

interface ReadableHandle {
  reading?: boolean;
  readStop?: () => number;
  readStart?: () => number;
}

function handleOf(socket: Socket): ReadableHandle | undefined {
  return (socket as unknown as { _handle?: ReadableHandle | null })._handle ?? undefined;
}

type Reader = { _read(size: number): void };
const stopped = new WeakSet<Socket>();
const guarded = new WeakSet<Socket>();

/** No more bytes are read from the kernel until resumeReading(). */
export function stopReading(socket: Socket): void {
  socket.pause();
  const handle = handleOf(socket);
  if (!handle || typeof handle.readStop !== 'function' || socket.destroyed) return;
  stopped.add(socket);
  if (!guarded.has(socket)) {
    guarded.add(socket);
    const reader = socket as unknown as Reader;
    const read = reader._read;
    reader._read = function (this: Socket, size: number) {
      if (!stopped.has(this)) read.call(this, size);
    };
  }
  if (handle.reading) {
    handle.reading = false;
    const err = handle.readStop();
    if (err) socket.destroy(new Error(`readStop failed (${err})`));
  }
}

/** Reading starts again; bytes node had already buffered are delivered first. */
export function resumeReading(socket: Socket): void {
  if (socket.destroyed) return;
  stopped.delete(socket);
  socket.resume();
  const handle = handleOf(socket);
  if (handle && handle.reading === false && typeof handle.readStart === 'function') {
    handle.reading = true;
    const err = handle.readStart();
    if (err) socket.destroy(new Error(`readStart failed (${err})`));
  }
}
