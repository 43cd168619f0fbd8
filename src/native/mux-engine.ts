// The control plane's handle on the data plane. It turns the addon's batched
// events into typed events and promises, applies the device policy
// (src/native/config-select.ts) before a device is opened, and hands connected
// client sockets to native code, and carries the CoreDeviceProxy tunnels'
// commands and events (host: startTunnel resolves with the device's answer;
// device: a tunnelHandshake event asks the sim to answer).
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

import {
  native,
  NativeError,
  type CableDescriptor,
  type DeviceRoleOptions,
  type PortTarget,
  type TestServiceKind,
  type EngineSnapshot,
  type EngineStats,
  type FfsInterfaceSpec,
  type HostTunnelOptions,
  type NativeEngine,
  type NativeEvent,
  type TunnelConfig,
  type UsbOpenRequest,
} from './addon.js';
import { checkDevice, serialToUdid } from './config-select.js';
import { EngineCaptures } from './engine-captures.js';
import type { AttachedDevice, MuxEngineEvents, MuxEngineOptions } from './engine-events.js';
import { RemoteSplices } from './remote-splices.js';
import { SnapshotRequests } from './snapshot-requests.js';
import { takeSocket, type Handover } from './socket-handover.js';
import { PendingTunnelStarts, TUNNEL_HANDSHAKE_TIMEOUT_MS, type TunnelHandshake } from './tunnel-starts.js';

export type { TunnelHandshake } from './tunnel-starts.js';

export type {
  AttachedDevice,
  ClosedInfo,
  LogEntry,
  MuxEngineEvents,
  MuxEngineOptions,
  TunnelClosedEvent,
  TunnelRequestEvent,
} from './engine-events.js';

export { SNAPSHOT_TIMEOUT_MS } from './snapshot-requests.js';

interface PendingConnect {
  resolve: (conn: number) => void;
  reject: (err: NativeError) => void;
}

export class MuxEngine extends EventEmitter<MuxEngineEvents> {
  readonly native: NativeEngine;
  readonly window: number;
  readonly connectTimeoutMs: number;
  readonly zeroWindowTimeoutMs: number | undefined;
  private readonly pending = new Map<number, PendingConnect>();
  /** connectTakingFd's connections, until they close or fail: who to tell of a failure. */
  private readonly takenClients = new Map<number, (err: NativeError, fd: number) => void>();
  private readonly devices = new Map<number, AttachedDevice>();
  private readonly readyHandles = new Set<number>();
  private readonly tunnelStarts = new PendingTunnelStarts((tunnel) => this.native.closeTunnel(tunnel));
  private readonly snapshots = new SnapshotRequests((id) => this.native.requestSnapshot(id));
  /** pcapng captures of what crosses the data plane (docs/capture.md). */
  readonly captures: EngineCaptures;
  private closed = false;
  /** Remote usbmux's sockets (remote-splices.ts). */
  readonly remote: RemoteSplices;

  constructor(options: MuxEngineOptions = {}) {
    super();
    this.window = options.window ?? 256 * 1024;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.zeroWindowTimeoutMs = options.zeroWindowTimeoutMs;
    this.native = new native.Engine((events) => this.dispatch(events));
    this.captures = new EngineCaptures(this.native, () => this.devices.values());
    this.remote = new RemoteSplices(this.native, () => this.closed);
  }

  listenCable(path: string): number {
    return this.native.listenCable(path);
  }

  closeListener(id: number): void {
    this.native.closeListener(id);
  }

  device(handle: number): AttachedDevice | undefined {
    return this.devices.get(handle);
  }

  isReady(handle: number): boolean {
    return this.readyHandles.has(handle);
  }

  /** Opens a pseudo-TCP connection; resolves with its id once the device accepts. */
  connect(handle: number, port: number, timeoutMs = this.connectTimeoutMs): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new NativeError('the engine is closed', 'ERR_ENGINE_CLOSED'));
        return;
      }
      const conn = this.native.connect(handle, port, timeoutMs);
      this.pending.set(conn, { resolve, reject });
    });
  }

  /**
   * Opens a connection for a client whose socket native code takes now: once
   * the device accepts, the data plane writes `result` to the socket and
   * starts moving its bytes, without waiting for JS. Resolves with the
   * connection id then; the caller destroys its socket object (closing
   * node's copy of the fd only). On failure the socket is still the
   * caller's, with `handover.early` unread by anyone.
   */
  connectClient(handle: number, port: number, handover: Handover, result: Buffer, timeoutMs = this.connectTimeoutMs): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new NativeError('the engine is closed', 'ERR_ENGINE_CLOSED'));
        return;
      }
      const conn = this.native.connectClient(handle, port, timeoutMs, handover.fd, handover.early, result);
      this.pending.set(conn, { resolve, reject });
    });
  }

  /**
   * A front-door client's Connect: the data plane takes `fd` now, writes
   * `result` when the device accepts and moves the client's bytes from then
   * on; JS hears nothing more of it unless it fails, when `refused` gets the
   * fd back (to answer the client on). Returns the connection id.
   */
  connectTakingFd(handle: number, port: number, fd: number, result: Buffer, refused: (err: NativeError, fd: number) => void): number {
    if (this.closed) throw new NativeError('the engine is closed', 'ERR_ENGINE_CLOSED');
    const conn = this.native.connectClient(handle, port, this.connectTimeoutMs, fd, undefined, result, true);
    this.takenClients.set(conn, refused);
    return conn;
  }

  /**
   * Moves a connected client's socket into native code. Bytes the client sent
   * before the handover (already read by JS) go first. From here on the
   * socket's bytes never enter JS.
   */
  adoptSocket(conn: number, socket: Socket, pipelined?: Buffer): void {
    const { fd, early } = takeSocket(socket, pipelined);
    this.native.attachClient(conn, fd, early);
    socket.destroy();
  }

  /**
   * A network Connect (docs/wifi.md): the client's socket and the daemon's
   * TCP socket to the phone move into native code, joined there; both
   * sockets are destroyed here (node's copies only). `toClient` (the
   * Connect's Result, written by JS already, is not part of it) goes to the
   * client ahead of the phone's bytes. Returns the connection id.
   */
  spliceSockets(client: Socket, pipelined: Buffer | undefined, phone: Socket): number {
    const c = takeSocket(client, pipelined);
    const p = takeSocket(phone);
    const conn = this.native.spliceSockets(c.fd, c.early, p.fd, p.early);
    client.destroy();
    phone.destroy();
    return conn;
  }

  /** See NativeEngine.openClientDoor; arrivals come as 'clientArrived'. */
  openClientDoor(path: string, backlog: number): number {
    return this.native.openClientDoor(path, backlog);
  }

  closeClientDoor(door: number): void {
    if (!this.closed) this.native.closeClientDoor(door);  // a closed engine closed its doors
  }

  closeConnection(conn: number): void {
    this.native.closeConnection(conn);
  }

  closeDevice(handle: number, unplugged = false): void {
    this.native.closeDevice(handle, unplugged);
  }

  /** Starts libusb in the data plane; throws NativeError ERR_USB_UNAVAILABLE where there is no USB. */
  startUsb(): void {
    this.native.startUsb();
  }

  /** Opens a phone that discovery found; it then arrives as `attached` like a cable device. */
  openUsb(request: UsbOpenRequest): number {
    return this.native.openUsb(request);
  }

  attachDeviceRole(cablePath: string, descriptor: CableDescriptor, options?: DeviceRoleOptions): number {
    return this.native.attachDeviceRole(cablePath, descriptor, options);
  }

  /** Device role: maps a port to a local target from now on, or unmaps it. */
  mapDevicePort(handle: number, port: number, target?: PortTarget): void {
    this.native.mapDevicePort(handle, port, target);
  }

  /** The device role on a mounted FunctionFS; see NativeEngine.attachDeviceRoleFfs. */
  attachDeviceRoleFfs(ffsDir: string, options?: DeviceRoleOptions): number {
    return this.native.attachDeviceRoleFfs(ffsDir, options);
  }

  /** A native echo, sink or source for the simulated phone; see NativeEngine.startTestService. */
  startTestService(kind: TestServiceKind, path?: string): number | string {
    return this.native.startTestService(kind, path);
  }

  /**
   * Host: runs CoreDeviceProxy on a connected connection (not handed to a
   * client): TLS with the pair record's host identity, then the request
   * frame. Resolves with the device's answer (to be checked, then
   * configureTunnel() or closeTunnel()); rejects with tunnelClosed's reason
   * or after `timeoutMs`. The connection is the tunnel's from here on, and
   * closed with it; if the tunnel cannot even start, it is closed here.
   */
  startTunnel(conn: number, options: HostTunnelOptions, timeoutMs = TUNNEL_HANDSHAKE_TIMEOUT_MS): Promise<TunnelHandshake> {
    if (this.closed) return Promise.reject(new NativeError('the engine is closed', 'ERR_ENGINE_CLOSED'));
    let tunnel: number;
    try {
      if (typeof this.native.startTunnel !== 'function') {
        throw new NativeError('this build of the addon has no CoreDeviceProxy tunnels; rebuild it', 'ERR_UNSUPPORTED');
      }
      tunnel = this.native.startTunnel(conn, options);
    } catch (err) {
      try {
        this.native.closeConnection(conn);
      } catch {
        // gone already
      }
      return Promise.reject(err);
    }
    return this.tunnelStarts.wait(tunnel, timeoutMs);
  }

  /** Either role, after the handshake: brings the tunnel's interface up (see TunnelConfig). */
  configureTunnel(tunnel: number, config: TunnelConfig): void {
    this.native.configureTunnel(tunnel, config);
  }

  /** Host: a TCP connection through the tunnel; resolves with the stream id once the device accepts. */
  tunnelConnect(tunnel: number, address: string, port: number, timeoutMs = this.connectTimeoutMs): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new NativeError('the engine is closed', 'ERR_ENGINE_CLOSED'));
        return;
      }
      // Stream ids share the connection ids' space and their events.
      const stream = this.native.tunnelConnect(tunnel, address, port, timeoutMs);
      this.pending.set(stream, { resolve, reject });
    });
  }

  /** Host: moves a client's socket onto a connected tunnel stream, as adoptSocket() does for a connection. */
  attachTunnelClient(stream: number, socket: Socket, pipelined?: Buffer): void {
    const { fd, early } = takeSocket(socket, pipelined);
    this.native.attachTunnelClient(stream, fd, early);
    socket.destroy();
  }

  /** Host: the tunnel's go-ios-style preamble listener on host:port (0: any); returns the bound port. */
  listenTunnelPreamble(tunnel: number, host = '127.0.0.1', port = 0): number {
    return this.native.listenTunnelPreamble(tunnel, host, port);
  }

  /**
   * Host, after configureTunnel: a kernel TUN interface named from
   * `namePattern` (one %d, the kernel's pick), with the host's address and
   * the MTU, up; returns its name. Throws the kernel's reason (EPERM without
   * CAP_NET_ADMIN, ENOENT without /dev/net/tun).
   */
  openTunnelInterface(tunnel: number, setup: { namePattern: string; address: string; prefixLength?: number; mtu: number }): string {
    return this.native.openTunnelInterface(tunnel, setup);
  }

  /** Ends a tunnel in either role; its streams are reset, and tunnelClosed follows. */
  closeTunnel(tunnel: number): void {
    this.native.closeTunnel(tunnel);
  }

  /** An interface-only FunctionFS function; see NativeEngine.attachFfsPlaceholder. */
  attachFfsPlaceholder(ffsDir: string, spec: FfsInterfaceSpec): number {
    return this.native.attachFfsPlaceholder(ffsDir, spec);
  }

  stats(): EngineStats {
    return this.native.stats();
  }

  /**
   * Every device link and connection with their counters, windows and RTT,
   * taken on the event thread between two turns. The JS thread never waits:
   * the answer comes back as an event. Callers that ask while a collection
   * is under way share it, so any number of stats requests cost one pass.
   */
  snapshot(): Promise<EngineSnapshot> {
    if (this.closed) return Promise.reject(new NativeError('the engine is closed', 'ERR_ENGINE_CLOSED'));
    return this.snapshots.snapshot();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
    for (const [conn, p] of this.pending) {
      p.reject(new NativeError(`connection ${conn} aborted: the engine closed`, 'ERR_ENGINE_CLOSED'));
    }
    this.pending.clear();
    this.takenClients.clear();  // the data plane closed their fds as it stopped
    this.tunnelStarts.abortAll(new NativeError('tunnel start aborted: the engine closed', 'ERR_ENGINE_CLOSED'));
    this.snapshots.abort(new NativeError('the engine closed', 'ERR_ENGINE_CLOSED'));
    this.captures.abortAll('the engine closed');
  }

  private dispatch(events: NativeEvent[]): void {
    // A throwing listener must not lose the rest of the batch, nor escape
    // into the addon's callback (where node only prints a warning).
    for (const ev of events) {
      try {
        this.handleEvent(ev);
      } catch (err) {
        try {
          this.emit('log', { level: 'error', text: `a listener of the '${ev.type}' event threw: ${(err as Error)?.stack ?? String(err)}` });
        } catch {
          // the log listener itself throws: nothing left to tell
        }
      }
    }
  }

  private handleEvent(ev: NativeEvent): void {
    switch (ev.type) {
      case 'attached':
        this.onAttached(ev.handle, ev.descriptor, ev.link, ev.locationId);
        break;
      case 'ready':
        this.readyHandles.add(ev.handle);
        this.emit('ready', { handle: ev.handle, version: ev.version });
        break;
      case 'detached':
        this.devices.delete(ev.handle);
        this.readyHandles.delete(ev.handle);
        this.emit('detached', { handle: ev.handle, code: ev.code, reason: ev.reason });
        break;
      case 'log':
        this.emit('log', { handle: ev.handle, conn: ev.conn, level: ev.level, text: ev.text });
        break;
      case 'connected': {
        const p = this.pending.get(ev.conn);
        this.pending.delete(ev.conn);
        if (p) p.resolve(ev.conn);
        else this.native.closeConnection(ev.conn);
        break;
      }
      case 'connectFailed': {
        const refused = this.takenClients.get(ev.conn);
        if (refused) {
          this.takenClients.delete(ev.conn);
          refused(new NativeError(ev.reason, ev.code), ev.fd ?? -1);
          break;
        }
        const p = this.pending.get(ev.conn);
        this.pending.delete(ev.conn);
        p?.reject(new NativeError(ev.reason, ev.code));
        break;
      }
      case 'closed':
        this.takenClients.delete(ev.conn);
        this.emit('closed', ev.conn, { reason: ev.reason, bytesIn: ev.bytesIn, bytesOut: ev.bytesOut });
        break;
      case 'snapshot':
        this.snapshots.settle(ev.requestId, ev.snapshot);
        break;
      case 'tunnelHandshake':
        if (ev.role === 'device') this.emit('tunnelHandshake', { handle: ev.handle, tunnel: ev.tunnel, body: ev.body });
        // A host answer nobody waits for (the start gave up) ends its tunnel.
        else if (!this.tunnelStarts.answered(ev.tunnel, ev.body)) this.native.closeTunnel(ev.tunnel);
        break;
      case 'clientArrived': {
        const { type: _type, ...arrival } = ev;
        this.emit('clientArrived', arrival);
        break;
      }
      case 'captureEnded': {
        const { type: _type, ...end } = ev;
        this.captures.ended(end);
        break;
      }
      case 'remoteReply':
        this.emit('remoteReply', ev.conn, ev.bytes);
        break;
      case 'remoteSecure':
        this.emit('remoteSecure', ev.conn, ev.text);
        break;
      case 'tunnelClosed':
        this.tunnelStarts.closed(ev.tunnel, new NativeError(ev.reason, ev.code));
        this.emit('tunnelClosed', { handle: ev.handle, tunnel: ev.tunnel, code: ev.code, reason: ev.reason });
        break;
    }
  }

  private onAttached(
    handle: number,
    descriptor: Required<CableDescriptor>,
    link: 'cable' | 'usb',
    locationId: number | undefined,
  ): void {
    const check = checkDevice(descriptor);
    if (!check.ok) {
      // Never open what is not an Apple usbmux device.
      this.native.closeDevice(handle);
      this.emit('rejected', { handle, reason: check.reason, descriptor });
      return;
    }
    const device: AttachedDevice = {
      handle,
      link,
      locationId,
      udid: serialToUdid(descriptor.serial),
      descriptor,
      selection: check.selection,
    };
    this.devices.set(handle, device);
    this.captures.label(handle, device.udid);  // before its first packet
    this.native.openDevice(handle, {
      window: this.window,
      maxPacketSize: check.selection.maxPacketSize,
      zeroWindowTimeoutMs: this.zeroWindowTimeoutMs,
    });
    this.emit('attached', device);
  }
}
