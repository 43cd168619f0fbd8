// The usbmuxd socket: accepts clients on a Unix path (mode 0666) or TCP, runs
// a ClientSession for each, and fans device notifications out to listeners.
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';

import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { MuxEngine } from '../native/mux-engine.js';
import type { Logger } from '../util/log.js';
import type { PairRecordStore } from '../pairing/store.js';
import type { TunnelManager } from '../tunnel/tunnel-manager.js';
import { peerCredentialsOf } from './access.js';
import { formatSocketAddress, type SocketAddress } from '../protocol/address.js';
import { ClientSession, STUCK_OUTPUT_TIMEOUT_MS, type ServerContext } from './client-session.js';
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
  private readonly server = net.createServer((socket) => this.accept(socket));
  private readonly clients = new Set<ClientSession>();
  private nextClientId = 1;
  private bound = false;
  private readonly ctx: ServerContext;

  constructor(private readonly options: ServerOptions) {
    this.ctx = {
      engine: options.engine,
      devices: options.devices,
      store: options.store,
      log: options.log,
      tunnels: options.tunnels,
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
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      if (a.kind === 'unix') this.server.listen({ path: a.path, backlog: LISTEN_BACKLOG }, resolve);
      else this.server.listen({ host: a.host, port: a.port, backlog: LISTEN_BACKLOG, ipv6Only: a.host.includes(':') }, resolve);
    });
    this.bound = true;
    if (a.kind === 'unix') chmodSync(a.path, 0o666);
    this.options.log.notice(`listening on ${formatSocketAddress(a)}`);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
    if (!this.bound) return;  // never ours: a live daemon's socket or someone's file
    this.bound = false;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    const a = this.options.address;
    if (a.kind === 'unix') {
      try {
        unlinkSync(a.path);
      } catch {
        // already gone
      }
    }
  }

  private accept(socket: net.Socket): void {
    if (socket.remoteFamily) socket.setNoDelay(true);
    const peer = this.options.address.kind === 'unix' ? peerCredentialsOf(socket) : undefined;
    const client = new ClientSession(this.nextClientId++, socket, this.ctx, peer);
    this.clients.add(client);
    client.start();
    this.options.log.debug(`client ${client.id} accepted`, peer ? { pid: peer.pid, uid: peer.uid } : {});
  }
}
