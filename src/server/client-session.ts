// One usbmuxd client, with usbmuxd's state machine: COMMAND, then either
// LISTEN (a notification pipe, for good) or CONNECTING and CONNECTED (a raw
// byte pipe owned by native code, for good).
//
// Every local user is a client (the socket is 0666), so everything one client
// can make the daemon hold is bounded here, and a failure inside one request
// ends at most that request (docs/server.md, "Bounds"):
// - one request in flight: the socket is not read while a request is served,
//   so what a client pipelines waits in the kernel's buffer, counted against
//   the client, and JS holds at most the one 64 KiB read it came in;
// - replies: the next request is not read while any reply waits in our
//   memory, i.e. until the kernel's socket buffer has taken the last one, so
//   a client that does not read holds at most one reply here; one that
//   leaves it waiting for STUCK_OUTPUT_TIMEOUT_MS is closed;
// - Connect: bytes sent behind it stay in the kernel and go to native code
//   with the fd;
// - every handler's error is caught here, answered and logged with the
//   client's id and pid.
import type { Socket } from 'node:net';

import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { MuxEngine } from '../native/mux-engine.js';
import type { Logger } from '../util/log.js';
import { NativeError, type PeerCredentials } from '../native/addon.js';
import type { PlistDict } from '../protocol/plist-codec.js';
import type { PairRecordStore } from '../pairing/store.js';
import type { TunnelManager } from '../tunnel/tunnel-manager.js';
import { TUNNEL_CONNECT } from '../protocol/tunnel-messages.js';
import { parseRequestPlist } from './flat-request.js';
import { handlePlistCommand, RESULT_EIO } from './plist-commands.js';
import {
  decodeConnectBinary,
  MessageFramer,
  MessageType,
  ProtocolVersion,
  Result,
  type Header,
  type Message,
} from '../protocol/usbmux.js';
import { attachedMessage, detachedMessage, pairedMessage, resultMessage, visibleInVersion } from './replies.js';
import { layoutForClient } from '../protocol/network-address.js';
import { resumeReading, stopReading } from './socket-reading.js';
import type { ConnectionOwners } from './stats.js';
import { connectRefusal, connectThrough, type ConnectPlan } from './connect-flow.js';
import { tunnelConnectPlan } from './tunnel-commands.js';
import { CAPTURE_MESSAGE } from '../protocol/capture.js';
import { startCapture } from './capture-command.js';
import { networkConnectPlan } from './network-connect.js';
import type { PairRecordPolicy } from './access.js';
import { remoteConnectPlan, type RemoteHooks } from './remote-commands.js';

/** A client that came over --remote-listen (docs/remote.md). */
export interface RemoteOrigin {
  /** "remote client 3 (192.0.2.7:40112)" */
  label: string;
  pairRecords: PairRecordPolicy;
}

/**
 * How long a reply may wait for the kernel to take it (the client's unread
 * replies fill the socket buffer, about 200 KiB) before the client is closed.
 */
export const STUCK_OUTPUT_TIMEOUT_MS = 10_000;

export interface ServerContext {
  engine: MuxEngine;
  devices: DeviceTable;
  store: PairRecordStore;
  log: Logger;
  /** The CoreDeviceProxy tunnels (TunnelStart, TunnelConnect...). */
  tunnels: TunnelManager;
  /** Remote usbmux hosts merged into this socket (docs/remote.md). */
  remotes?: RemoteHooks;
  /** Which client opened each live connection, for the stats request. */
  owners: ConnectionOwners;
  /** Clients in LISTEN state, for ListListeners. */
  listeners(): ClientSession[];
  /** Notifications a listener may leave unread (beyond the kernel's buffer) before it is closed. */
  maxUnreadNotificationBytes: number;
  /** See STUCK_OUTPUT_TIMEOUT_MS; tests shorten it. */
  stuckOutputTimeoutMs: number;
  forget(client: ClientSession): void;
}

export type ClientState = 'command' | 'listen' | 'connecting' | 'connected' | 'closed';

export interface ClientInfo {
  bundleId?: string;
  clientVersion?: string;
  progName?: string;
  libusbmuxVersion?: number;
}

export type { ConnectPlan } from './connect-flow.js';

const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

export class ClientSession {
  state: ClientState = 'command';
  /** The protocol of the client's latest request; replies and notifications use it. */
  version: number = ProtocolVersion.Binary;
  readonly info: ClientInfo = {};
  private readonly framer = new MessageFramer();
  private serving = false;
  /** Writes the kernel has not taken yet; their callbacks count them down. */
  private unwritten = 0;
  private onAllWritten: (() => void) | undefined;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private readonly ctx: ServerContext,
    /** Who connected, as the kernel saw it (Unix sockets only). */
    readonly peer?: PeerCredentials,
    /** Set for a client from another host (--remote-listen). */
    readonly origin?: RemoteOrigin,
  ) {}

  /** "client 7 (pid 1234, uid 1000)", for log lines. */
  get label(): string {
    if (this.origin) return `client ${this.id} (${this.origin.label})`;
    return this.peer ? `client ${this.id} (pid ${this.peer.pid}, uid ${this.peer.uid})` : `client ${this.id}`;
  }

  /**
   * `received`: what the front door already read from the client (its first
   * message, or the part of it that came), served before anything else.
   */
  start(received?: Buffer): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.ctx.log.debug(`${this.label}: ${err.message}`));
    this.socket.on('close', () => {
      if (this.state !== 'connected') this.state = 'closed';
      this.ctx.forget(this);
    });
    if (received?.length) this.onData(received);
  }

  /**
   * The front door's Connect (front-door.ts) failed: answered here as a
   * failed Connect is, and the client goes on as in COMMAND.
   */
  refusedAtTheDoor(version: number, tag: number, result: number, what: string, reason: string): void {
    this.version = version;
    this.ctx.log.info(`${this.label}: ${what} failed: ${reason}`);
    this.send(resultMessage(version, tag, result));
  }

  send(bytes: Buffer): void {
    if (this.state === 'closed' || this.state === 'connected' || this.socket.destroyed) return;
    this.unwritten++;
    // The callback runs once the kernel has the bytes, or with an error when
    // the socket is destroyed first: either way they are no longer ours.
    this.socket.write(bytes, () => {
      if (--this.unwritten > 0) return;
      const resolve = this.onAllWritten;
      this.onAllWritten = undefined;
      resolve?.();
    });
  }

  notifyAttached(d: DeviceRecord): void {
    if (this.state === 'listen' && visibleInVersion(this.version, d)) {
      this.notify(attachedMessage(this.version, d, layoutForClient(this.info)));
    }
  }

  notifyDetached(d: DeviceRecord): void {
    if (this.state === 'listen' && visibleInVersion(this.version, d)) this.notify(detachedMessage(this.version, d));
  }

  notifyPaired(d: DeviceRecord): void {
    if (this.state === 'listen' && visibleInVersion(this.version, d)) this.notify(pairedMessage(this.version, d));
  }

  // A listener that never reads would have every later event queued for it
  // in our memory, for as long as phones come and go.
  private notify(bytes: Buffer): void {
    this.send(bytes);
    if (this.socket.writableLength > this.ctx.maxUnreadNotificationBytes) {
      this.ctx.log.warning(`${this.label} closed: a listener with ${this.socket.writableLength} bytes of notifications unread`);
      this.state = 'closed';
      this.socket.destroy();
    }
  }

  close(reason: string): void {
    this.ctx.log.info(`${this.label} closed: ${reason}`);
    this.state = 'closed';
    this.socket.end();
    this.socket.destroySoon?.();
  }

  private onData(chunk: Buffer): void {
    if (this.state !== 'command' && this.state !== 'listen') return;
    this.framer.push(chunk);
    if (this.serving) return;
    // Nothing more is read until the messages in hand are answered.
    this.serving = true;
    stopReading(this.socket);
    this.serveBuffered().then(
      () => {
        this.serving = false;
        if (this.state === 'command' || this.state === 'listen') resumeReading(this.socket);
      },
      (err: unknown) => {
        // serve() catches per request; this is the loop itself failing.
        this.serving = false;
        this.ctx.log.error(`${this.label}: request loop failed: ${(err as Error)?.stack ?? String(err)}`);
        this.state = 'closed';
        this.socket.destroy();
      },
    );
  }

  /**
   * Answers every whole message buffered, one at a time, in order. Between
   * two of them every other client's I/O gets a turn: 500 clients pipelining
   * ListDevices kept a second client waiting 2.7-4 s when each could serve
   * 32 back to back, and a few ms when each serves one.
   */
  private async serveBuffered(): Promise<void> {
    for (let first = true; ; first = false) {
      if (!first) {
        // Nothing more in hand: reading resumes at once, without a turn's wait.
        if (this.framer.bufferedBytes === 0) return;
        await yieldToIo();
      }
      if (this.state !== 'command' && this.state !== 'listen') return;
      let message: Message | null;
      try {
        message = this.framer.next();
      } catch (err) {
        this.ctx.log.warning(`${this.label}: ${(err as Error).message}; closing it`);
        this.state = 'closed';
        this.socket.destroy();
        return;
      }
      if (!message) return;
      await this.serve(message);
      if (!(await this.repliesTaken())) return;
    }
  }

  // The client boundary: whatever a handler throws ends this request only.
  private async serve(message: Message): Promise<void> {
    try {
      await this.handle(message);
    } catch (err) {
      const { header } = message;
      this.ctx.log.error(
        `${this.label}: request (version ${header.version}, type ${header.message}, tag ${header.tag}) failed: ${(err as Error)?.stack ?? String(err)}`,
      );
      if (this.state === 'command') this.reply(header.tag, RESULT_EIO);
    }
  }

  /**
   * Waits until the kernel has taken every reply; false if the client was
   * closed meanwhile (for leaving them there too long, say).
   */
  private async repliesTaken(): Promise<boolean> {
    if (this.state !== 'command' && this.state !== 'listen') return false;
    if (this.unwritten === 0) return true;
    const limit = this.ctx.stuckOutputTimeoutMs;
    const taken = await new Promise<boolean>((resolve) => {
      const finish = (value: boolean) => {
        clearTimeout(timer);
        this.socket.off('close', onClose);
        this.onAllWritten = undefined;
        resolve(value);
      };
      const onClose = () => finish(true);
      const timer = setTimeout(() => finish(false), limit);
      this.onAllWritten = () => finish(true);
      this.socket.once('close', onClose);
    });
    if (this.socket.destroyed || (this.state as ClientState) === 'closed') return false;
    if (!taken) {
      this.ctx.log.warning(`${this.label} closed: ${this.socket.writableLength} bytes of replies left unread for ${limit} ms`);
      this.state = 'closed';
      this.socket.destroy();
      return false;
    }
    return true;
  }

  private reply(tag: number, result: number): void {
    this.send(resultMessage(this.version, tag, result));
  }

  private async handle({ header, body }: Message): Promise<void> {
    if (this.state === 'listen') {
      // usbmuxd accepts nothing after Listen; frida relies on the close. It
      // checks the state before the version, so a listener that sends
      // garbage with a bad version field is closed too, not kept.
      const known = header.version === ProtocolVersion.Binary || header.version === ProtocolVersion.Plist;
      this.send(resultMessage(known ? header.version : this.version, header.tag, known ? Result.BADCOMMAND : Result.BADVERSION));
      this.close(`a message after Listen (version ${header.version}, type ${header.message}, ${header.length} bytes)`);
      return;
    }
    if (header.version !== ProtocolVersion.Binary && header.version !== ProtocolVersion.Plist) {
      this.ctx.log.info(`${this.label}: protocol version ${header.version} is not 0 or 1`);
      this.send(resultMessage(ProtocolVersion.Binary, header.tag, Result.BADVERSION));
      return;
    }
    this.version = header.version;
    if (header.version === ProtocolVersion.Binary) return this.handleBinary(header, body);
    if (header.message !== MessageType.Plist) return this.reply(header.tag, Result.BADCOMMAND);
    let request: PlistDict;
    try {
      const parsed = parseRequestPlist(body);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || Buffer.isBuffer(parsed)) {
        throw new Error('the body is not a dictionary');
      }
      request = parsed as PlistDict;
    } catch (err) {
      // usbmuxd stays silent here and the client waits for its timeout.
      this.ctx.log.info(`${this.label}: unparsable plist request: ${(err as Error).message}`);
      return this.reply(header.tag, Result.BADCOMMAND);
    }
    this.noteClientInfo(request);
    const type = request.MessageType;
    if (typeof type !== 'string') {
      this.ctx.log.info(`${this.label}: plist request without a MessageType`);
      return this.reply(header.tag, Result.BADCOMMAND);
    }
    if (type === 'Listen') return this.listen(header.tag);
    if (type === 'Connect') {
      const deviceId = request.DeviceID;
      const port = request.PortNumber;
      if (typeof deviceId !== 'number' && typeof deviceId !== 'bigint') return this.reply(header.tag, Result.BADDEV);
      if (typeof port !== 'number' && typeof port !== 'bigint') return this.reply(header.tag, Result.BADCOMMAND);
      // PortNumber is htons(port) as a host integer: swap it back.
      const swapped = Number(port) & 0xffff;
      return this.connect(header.tag, Number(deviceId), ((swapped & 0xff) << 8) | (swapped >> 8));
    }
    if (type === TUNNEL_CONNECT) {
      const plan = tunnelConnectPlan(request, this.ctx, this.socket);
      return typeof plan === 'function' ? this.send(plan(header.tag)) : this.pipeThrough(header.tag, plan);
    }
    if (type === CAPTURE_MESSAGE) {
      // The socket carries pcapng from the data plane once this succeeds.
      return startCapture(this, header.tag, request, this.ctx, () => {
        this.state = 'connected';
        this.ctx.forget(this);
      });
    }
    const answer = await handlePlistCommand(type, request, this.ctx, this);
    this.send(answer(header.tag));
  }

  private handleBinary(header: Header, body: Buffer): void | Promise<void> {
    if (header.message === MessageType.Listen) return this.listen(header.tag);
    if (header.message !== MessageType.Connect) return this.reply(header.tag, Result.BADCOMMAND);
    let target;
    try {
      target = decodeConnectBinary(body);
    } catch {
      return this.reply(header.tag, Result.BADCOMMAND);
    }
    return this.connect(header.tag, target.deviceId, target.port);
  }

  private noteClientInfo(request: PlistDict): void {
    if (typeof request.BundleID === 'string') this.info.bundleId = request.BundleID;
    if (typeof request.ClientVersionString === 'string') this.info.clientVersion = request.ClientVersionString;
    if (typeof request.ProgName === 'string') this.info.progName = request.ProgName;
    if (typeof request.kLibUSBMuxVersion === 'number') this.info.libusbmuxVersion = request.kLibUSBMuxVersion;
  }

  private listen(tag: number): void {
    // One synchronous burst: the Result and an Attached per visible device go
    // out before any other client's request is looked at.
    this.reply(tag, Result.OK);
    this.state = 'listen';
    for (const d of this.ctx.devices.visible()) this.notifyAttached(d);
  }

  private connect(tag: number, deviceId: number, port: number): void | Promise<void> {
    const device = this.ctx.devices.byId(deviceId);
    if (!device) return this.reply(tag, Result.BADDEV);
    if (port === 0) return this.reply(tag, Result.CONNREFUSED);
    if (device.remote) return this.pipeThrough(tag, remoteConnectPlan(this.ctx, device, port, this.socket, this.version));
    if (device.connectionType === 'Network') {
      const { engine } = this.ctx;
      return this.pipeThrough(tag, networkConnectPlan(engine, device, port, this.socket, this.version, engine.connectTimeoutMs));
    }
    return this.pipeThrough(tag, {
      what: `connect to device ${deviceId} port ${port}`,
      open: () => this.ctx.engine.connect(device.handle, port),
      openHandingOver: (handover, result) => this.ctx.engine.connectClient(device.handle, port, handover, result),
      adopt: (conn, pipelined) => this.ctx.engine.adoptSocket(conn, this.socket, pipelined),
      refused: (err) => (t) => resultMessage(this.version, t, connectRefusal(err)),
    });
  }

  private pipeThrough(tag: number, how: ConnectPlan): Promise<void> {
    const session = this;
    return connectThrough(
      {
        socket: this.socket,
        label: this.label,
        version: this.version,
        get state() {
          return session.state;
        },
        set state(value: ClientState) {
          session.state = value;
        },
        unwrittenReplies: this.unwritten,
        takeRemainder: () => this.framer.takeRemainder(),
        pushBack: (bytes) => this.framer.push(bytes),
        send: (bytes) => this.send(bytes),
        log: this.ctx.log,
        connected: (conn) => {
          this.ctx.owners.set(conn, { client: this.id, progName: this.info.progName, bundleId: this.info.bundleId });
          this.state = 'connected';
          this.ctx.forget(this);
        },
        closeConnection: (conn) => this.ctx.engine.closeConnection(conn),
      },
      tag,
      how,
    );
  }
}
