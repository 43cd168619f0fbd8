// The usbmuxd socket: accepts clients on a Unix path (mode 0666) or TCP, runs
// a ClientSession for each, and fans device notifications out to listeners.
import { chmodSync, closeSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';

import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { MuxEngine } from '../native/mux-engine.js';
import type { Logger } from '../util/log.js';
import type { PairRecordStore } from '../pairing/store.js';
import type { TunnelManager } from '../tunnel/tunnel-manager.js';
import type { ClientArrival, PeerCredentials } from '../native/addon.js';
import { connectAtTheDoor, doorConnect } from './front-door.js';
import { formatSocketAddress, type SocketAddress } from '../protocol/address.js';
import { ClientSession, STUCK_OUTPUT_TIMEOUT_MS, type RemoteOrigin, type ServerContext } from './client-session.js';
import type { RemoteHooks } from './remote-commands.js';
import { ConnectionOwners } from './stats.js';

export interface ServerOptions {
  address: SocketAddress;
  engine: MuxEngine;
  devices: DeviceTable;
  store: PairRecordStore;
  log: Logger;
  tunnels: TunnelManager;
  /** See ServerContext.maxUnreadNotificationBytes (default 1 MiB). */
  maxUnreadNotificationBytes?: number;
  /** See STUCK_OUTPUT_TIMEOUT_MS (the default). */
  stuckOutputTimeoutMs?: number;
  /** Remote usbmux hosts merged into this socket (docs/remote.md). */
  remotes?: RemoteHooks;
}

/**
 * Connections the kernel queues before we accept them (it caps this at
 * net.core.somaxconn, 4096 on current kernels). A full queue refuses a Unix
 * client with EAGAIN, which libusbmuxd does not retry; a burst of a thousand
 * clients (a device farm's CI starting at once, or the hostile-local crowd
 * on a loaded machine) is queued instead. Each queued connection is the
 * kernel's memory, counted against its client.
 */
const LISTEN_BACKLOG = 1024;

/** Is something answering on this Unix socket path? */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export class UsbmuxServer {
  private readonly server = net.createServer((socket) => {
    this.accept(socket);
  });
  private readonly clients = new Set<ClientSession>();
  private nextClientId = 1;
  private bound = false;
  /** The native front door's id while it listens (Unix sockets); TCP is node's server. */
  private door: number | undefined;
  private readonly ctx: ServerContext;

  constructor(private readonly options: ServerOptions) {
    this.ctx = {
      engine: options.engine,
      devices: options.devices,
      store: options.store,
      log: options.log,
      tunnels: options.tunnels,
      remotes: options.remotes,
      owners: new ConnectionOwners(options.engine),
      listeners: () => [...this.clients].filter((c) => c.state === 'listen'),
      maxUnreadNotificationBytes: options.maxUnreadNotificationBytes ?? 1 << 20,
      stuckOutputTimeoutMs: options.stuckOutputTimeoutMs ?? STUCK_OUTPUT_TIMEOUT_MS,
      forget: (c) => this.clients.delete(c),
    };
    const each = (fn: (c: ClientSession, d: DeviceRecord) => void) => (d: DeviceRecord) => {
      for (const c of this.clients) fn(c, d);
    };
    options.devices.on('attached', each((c, d) => c.notifyAttached(d)));
    options.devices.on('detached', each((c, d) => c.notifyDetached(d)));
    options.devices.on('paired', each((c, d) => c.notifyPaired(d)));
    this.server.maxConnections = 65536;
    options.engine.on('clientArrived', (arrival) => this.arrive(arrival));
  }

  get address(): SocketAddress {
    return this.options.address;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  async listen(): Promise<void> {
    const a = this.options.address;
    if (a.kind === 'unix') {
      let stat;
      try {
        stat = lstatSync(a.path);
      } catch {
        stat = null;
      }
      if (stat && !stat.isSocket()) throw new Error(`${a.path} exists and is not a socket; not replacing it`);
      if (stat) {
        if (await socketInUse(a.path)) throw new Error(`another usbmuxd is listening on ${a.path}`);
        unlinkSync(a.path);
      }
    }
    if (a.kind === 'unix') {
      // The data plane accepts and reads first messages (front-door.ts).
      this.door = this.options.engine.openClientDoor(a.path, LISTEN_BACKLOG);
    } else {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen({ host: a.host, port: a.port, backlog: LISTEN_BACKLOG, ipv6Only: a.host.includes(':') }, resolve);
      });
    }
    this.bound = true;
    if (a.kind === 'unix') chmodSync(a.path, 0o666);
    this.options.log.notice(`listening on ${formatSocketAddress(a)}`);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
    if (!this.bound) return;  // never ours: a live daemon's socket or someone's file
    this.bound = false;
    if (this.door !== undefined) {
      this.options.engine.closeClientDoor(this.door);
      this.door = undefined;
    } else {
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
    const a = this.options.address;
    if (a.kind === 'unix') {
      try {
        unlinkSync(a.path);
      } catch {
        // already gone
      }
    }
  }

  /** A client from another host (--remote-listen): its plaintext socket, served with the policy. */
  serveRemote(socket: net.Socket, origin: RemoteOrigin): void {
    if (!this.bound) {
      socket.destroy();
      return;
    }
    this.accept(socket, undefined, undefined, this.nextClientId++, origin);
  }

  private accept(socket: net.Socket, peer?: PeerCredentials, received?: Buffer, id = this.nextClientId++, origin?: RemoteOrigin): ClientSession {
    if (socket.remoteFamily) socket.setNoDelay(true);
    const client = new ClientSession(id, socket, this.ctx, peer, origin);
    this.clients.add(client);
    client.start(received);
    return client;
  }

  // A client from the front door: a Connect is opened without a session;
  // anything else gets one, on the fd, starting with what the door read.
  private arrive(arrival: ClientArrival): void {
    const id = this.nextClientId++;
    if (!this.bound) {
      closeSync(arrival.fd);
      return;
    }
    const connect = doorConnect(arrival, this.ctx);
    if (!connect) {
      if (!arrival.complete && arrival.why) this.options.log.debug(`client ${id}: handed over by the door: ${arrival.why}`);
      this.serveFd(arrival, id, arrival.bytes);
      return;
    }
    connectAtTheDoor(arrival, connect, this.ctx, id, (result, reason, fd) => {
      if (fd < 0) return;  // the client is gone with the engine
      if (!this.bound) return closeSync(fd);
      const client = this.serveFd({ ...arrival, fd }, id);
      client?.refusedAtTheDoor(connect.version, connect.tag, result, `connect to device ${connect.device.deviceId} port ${connect.port}`, reason);
    });
  }

  private serveFd(arrival: ClientArrival, id: number, received?: Buffer): ClientSession | undefined {
    let socket: net.Socket;
    try {
      socket = new net.Socket({ fd: arrival.fd, readable: true, writable: true });
    } catch (err) {
      this.options.log.error(`client ${id}: cannot serve its socket: ${(err as Error).message}`);
      closeSync(arrival.fd);
      return undefined;
    }
    return this.accept(socket, arrival.peer, received, id);
  }
}
