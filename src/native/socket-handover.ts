// Handing a connected client socket to native code: its file descriptor, and
// whatever node already read from it, which must go first. From then on the
// socket's bytes never enter JS. A mux connection (attachClient) and a tunnel
// stream (attachTunnelClient) are handed over alike.
import type { Socket } from 'node:net';

import { NativeError } from './addon.js';

export interface Handover {
  fd: number;
  /** Bytes the client sent that JS already holds, in order; undefined when none. */
  early: Buffer | undefined;
}

/**
 * Takes the socket's fd and buffered bytes. The caller passes them to the
 * engine, which duplicates the fd, and then destroys the socket object: that
 * closes node's copy only (docs/architecture.md, "Node internals").
 */
export function takeSocket(socket: Socket, pipelined?: Buffer): Handover {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new NativeError('socket has no file descriptor to hand over', 'ERR_INVALID_ARGUMENT');
  }
  socket.pause();
  const early: Buffer[] = pipelined && pipelined.length ? [pipelined] : [];
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) early.push(chunk);
  return { fd, early: early.length ? Buffer.concat(early) : undefined };
}
