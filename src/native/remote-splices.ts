// Remote usbmux's part of the engine (docs/remote.md): sockets handed to the
// data plane, which runs their TLS and joins them (native/engine/splices.cc).
// MuxEngine.remote is one of these; the events come as MuxEngine's
// `remoteReply`, `remoteSecure` and `closed`.
import type { Socket } from 'node:net';

import type { NativeEngine, RemoteTlsPem } from './addon.js';
import { takeSocket } from './socket-handover.js';

export class RemoteSplices {
  constructor(
    private readonly native: NativeEngine,
    private readonly closed: () => boolean,
  ) {}

  /** A Connect to a remote host (NativeEngine.dialRemote); `far` was paused before it connected. */
  dial(far: Socket, tls: RemoteTlsPem | null, request: Buffer): number {
    const conn = this.native.dialRemote(takeSocket(far).fd, tls, request);
    far.destroy();  // node's copy of the fd only
    return conn;
  }

  /** The client of a dialled Connect, after JS wrote its Result. */
  attach(conn: number, client: Socket, pipelined?: Buffer): void {
    const c = takeSocket(client, pipelined);
    this.native.attachDialled(conn, c.fd, c.early);
    client.destroy();
  }

  /** A remote client's connection (NativeEngine.serveRemote); `far` was accepted paused. */
  serve(far: Socket, tls: RemoteTlsPem): { conn: number; fd: number } {
    const served = this.native.serveRemote(takeSocket(far).fd, tls);
    far.destroy();
    return served;
  }

  /** See NativeEngine.spliceFarGone. */
  farGone(conn: number, reason: string): void {
    if (!this.closed()) this.native.spliceFarGone(conn, reason);
  }
}
