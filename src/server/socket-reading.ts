// Stops and restarts reading a client's socket at the kernel, not just at
// the stream. `socket.pause()` alone only stops 'data' events: node keeps
// reading until its stream buffer passes the high-water mark, so one more
// read of up to 64 KiB lands in our memory after every pause. Stopping the
// handle leaves what the client sends next in the kernel's socket buffer,
// where it counts against the client, and where the native data path finds
// it when the fd is handed over after a Connect.
//
// This uses the same two handle fields that net.Socket's own pause() uses
// for sockets opened with `onread` (lib/net.js), and resume() restarts the
// handle through Socket#_read as usual. Should a future node hide them, the
// socket is still paused at the stream, and only the 64 KiB bound loosens.
import type { Socket } from 'node:net';

interface ReadableHandle {
  reading?: boolean;
  readStop?: () => number;
}

function handleOf(socket: Socket): ReadableHandle | undefined {
  return (socket as unknown as { _handle?: ReadableHandle | null })._handle ?? undefined;
}

/** No more bytes are read from the kernel until resumeReading(). */
export function stopReading(socket: Socket): void {
  socket.pause();
  const handle = handleOf(socket);
  if (handle?.reading && typeof handle.readStop === 'function' && !socket.destroyed) {
    handle.reading = false;
    const err = handle.readStop();
    if (err) socket.destroy(new Error(`readStop failed (${err})`));
  }
}

/** Reading starts again; bytes node had already buffered are delivered first. */
export function resumeReading(socket: Socket): void {
  if (!socket.destroyed) socket.resume();
}
