// com.apple.afc (reference §2.3): the phone's media file service, no TLS.
// Files live in memory under a byte budget by default, or in a host
// directory (jailed) when `root` is given. One AfcSession per connection;
// a connection that breaks framing is closed without touching the others.
import { createServer, type Server, type Socket } from 'node:net';

import { MAX_WRITE_PAYLOAD } from '../../afc/protocol.js';
import { DirectoryAfcStore } from './afc-dir-store.js';
import { DEFAULT_MEMORY_CAPACITY, MemoryAfcStore } from './afc-memory-store.js';
import { AfcSession } from './afc-session.js';
import type { AfcStore } from './afc-store.js';
import { listenService, type ServiceAddress } from './listen.js';

export const AFC_SERVICE = 'com.apple.afc';
/** The whole filesystem on a jailbroken phone; StartService sets EnableServiceSSL for it. */
export const AFC2_SERVICE = 'com.apple.afc2';

export interface AfcServiceOptions {
  /** Serve this host directory instead of an in-memory tree. */
  root?: string;
  /** Serve this store (tests inspect a MemoryAfcStore they made); wins over `root`. */
  store?: AfcStore;
  /** Budget of the in-memory store in bytes (default 1 GiB). */
  capacityBytes?: number;
  /** Largest FILE_READ answer (default 4 MiB, what pymobiledevice3 asks for). */
  maxReadBytes?: number;
  /** Largest file data in one FILE_WRITE packet (default 1 GiB, what pymobiledevice3 sends). */
  maxWritePacket?: number;
  /** Open handles per connection (default 256). */
  maxOpenFiles?: number;
  /** GET_DEVINFO's Model (default iPhone15,3, the sim's product type). */
  model?: string;
}

/** Serves each connection it is given (the sim hands it those of its registry socket). */
export function afcConnectionHandler(options: AfcServiceOptions = {}): (socket: Socket) => void {
  const store =
    options.store ??
    (options.root ? new DirectoryAfcStore(options.root) : new MemoryAfcStore(options.capacityBytes ?? DEFAULT_MEMORY_CAPACITY));
  const limits = {
    maxReadBytes: options.maxReadBytes ?? 4 * 1024 * 1024,
    maxWritePacket: options.maxWritePacket ?? MAX_WRITE_PAYLOAD,
    maxOpenFiles: options.maxOpenFiles ?? 256,
    model: options.model ?? 'iPhone15,3',
  };
  return (socket) => {
    socket.on('error', () => socket.destroy());
    void new AfcSession(socket, store, limits).run();
  };
}

export async function startAfc(
  at?: ServiceAddress,
  options: AfcServiceOptions = {},
): Promise<{ server: Server; address: string | number }> {
  const server = createServer(afcConnectionHandler(options));
  return { server, address: await listenService(server, at) };
}
