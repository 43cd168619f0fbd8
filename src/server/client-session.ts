// One usbmuxd client, with usbmuxd's state machine: COMMAND, then either
// LISTEN (a notification pipe, for good) or CONNECTING and CONNECTED (a raw
// byte pipe owned by native code, for good). Messages are handled one at a
// time, in order; a reply never overtakes the reply to an earlier request.
import type { Socket } from 'node:net';

import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { MuxEngine } from '../devices/mux-engine.js';
import type { Logger } from '../log.js';
import { NativeError, type PeerCredentials } from '../native.js';
import type { PlistDict } from '../pairing/plist-codec.js';
import type { PairRecordStore } from '../pairing/store.js';
import { handlePlistCommand } from './plist-commands.js';
import {
  decodeConnectBinary,
  MessageFramer,
  MessageType,
  ProtocolVersion,
  Result,
  type Message,
} from './protocol.js';
import { attachedMessage, detachedMessage, pairedMessage, resultMessage } from './replies.js';
import type { ConnectionOwners } from './stats.js';
import { parseRequestPlist } from './flat-request.js';

export interface ServerContext {
  engine: MuxEngine;
  devices: DeviceTable;
  store: PairRecordStore;
  log: Logger;
  /** Which client opened each live connection, for the stats request. */
  owners: ConnectionOwners;
  /** Clients in LISTEN state, for ListListeners. */
  listeners(): ClientSession[];
  /** Notifications a listener may leave unread (beyond the kernel's buffer) before it is closed. */
  maxUnreadNotificationBytes: number;
  forget(client: ClientSession): void;
}

export type ClientState = 'command' | 'listen' | 'connecting' | 'connected' | 'closed';

export interface ClientInfo {
  bundleId?: string;
  clientVersion?: string;
  progName?: string;
  libusbmuxVersion?: number;
}

export class ClientSession {
  state: ClientState = 'command';
  /** The protocol of the client's latest request; replies and notifications use it. */
  version: number = ProtocolVersion.Binary;
  readonly info: ClientInfo = {};
  private readonly framer = new MessageFramer();
  private pipelined: Buffer[] = [];
  private pumping = false;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private readonly ctx: ServerContext,
    /** Who connected, as the kernel saw it (Unix sockets only). */
    readonly peer?: PeerCredentials,
  ) {}

  start(): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.ctx.log.debug(`client ${this.id}: ${err.message}`));
    this.socket.on('close', () => {
      if (this.state !== 'connected') this.state = 'closed';
      this.ctx.forget(this);
    });
  }

  send(bytes: Buffer): void {
    if (this.state !== 'closed' && this.state !== 'connected') this.socket.write(bytes);
  }

  notifyAttached(d: DeviceRecord): void {
    if (this.state === 'listen') this.notify(attachedMessage(this.version, d));
  }

  notifyDetached(d: DeviceRecord): void {
    if (this.state === 'listen') this.notify(detachedMessage(this.version, d));
  }

  notifyPaired(d: DeviceRecord): void {
    if (this.state === 'listen') this.notify(pairedMessage(this.version, d));
  }

  // A listener that never reads would have every later event queued for it
  // in our memory, for as long as phones come and go.
  private notify(bytes: Buffer): void {
    this.send(bytes);
    if (this.socket.writableLength > this.ctx.maxUnreadNotificationBytes) {
      this.ctx.log.warning(`client ${this.id} closed: a listener with ${this.socket.writableLength} bytes of notifications unread`);
      this.state = 'closed';
      this.socket.destroy();
    }
  }

  close(reason: string): void {
    this.ctx.log.info(`client ${this.id} closed: ${reason}`);
    this.state = 'closed';
    this.socket.end();
    this.socket.destroySoon?.();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'connecting') {
      // Bytes sent after Connect belong to the connection, not to us.
      this.pipelined.push(chunk);
      return;
    }
    if (this.state !== 'command' && this.state !== 'listen') return;
    this.framer.push(chunk);
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.state === 'command' || this.state === 'listen') {
        let message: Message | null;
        try {
          message = this.framer.next();
        } catch (err) {
          this.ctx.log.warning(`client ${this.id}: ${(err as Error).message}; closing it`);
          this.state = 'closed';
          this.socket.destroy();
          return;
        }
        if (!message) return;
        await this.handle(message);
      }
    } finally {
      this.pumping = false;
    }
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
      this.ctx.log.info(`client ${this.id}: protocol version ${header.version} is not 0 or 1`);
      this.send(resultMessage(ProtocolVersion.Binary, header.tag, Result.BADVERSION));
      return;
    }
    this.version = header.version;
    if (header.version === ProtocolVersion.Binary) {
      if (header.message === MessageType.Listen) return this.listen(header.tag);
      if (header.message === MessageType.Connect) {
        let target;
        try {
          target = decodeConnectBinary(body);
        } catch {
          return this.reply(header.tag, Result.BADCOMMAND);
        }
        return this.connect(header.tag, target.deviceId, target.port);
      }
      return this.reply(header.tag, Result.BADCOMMAND);
    }
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
      this.ctx.log.info(`client ${this.id}: unparsable plist request: ${(err as Error).message}`);
      return this.reply(header.tag, Result.BADCOMMAND);
    }
    this.noteClientInfo(request);
    const type = request.MessageType;
    if (typeof type !== 'string') {
      this.ctx.log.info(`client ${this.id}: plist request without a MessageType`);
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
    const answer = await handlePlistCommand(type, request, this.ctx, this);
    this.send(answer(header.tag));
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

  private async connect(tag: number, deviceId: number, port: number): Promise<void> {
    const device = this.ctx.devices.byId(deviceId);
    if (!device) return this.reply(tag, Result.BADDEV);
    if (port === 0) return this.reply(tag, Result.CONNREFUSED);
    this.state = 'connecting';
    this.pipelined = [this.framer.takeRemainder()];
    let conn: number;
    try {
      conn = await this.ctx.engine.connect(device.handle, port);
    } catch (err) {
      if (this.state !== 'connecting') return;
      const code = err instanceof NativeError ? err.code : 'ERR';
      this.ctx.log.info(`client ${this.id}: connect to device ${deviceId} port ${port} failed: ${(err as Error).message}`);
      this.state = 'command';
      this.reply(tag, code === 'ENODEV' ? Result.BADDEV : Result.CONNREFUSED);
      // Connect failed, so what the client sent behind it are commands after all.
      this.framer.push(Buffer.concat(this.pipelined));
      this.pipelined = [];
      return;
    }
    if (this.state !== 'connecting') {
      this.ctx.engine.closeConnection(conn);  // the client left while we connected
      return;
    }
    this.ctx.owners.set(conn, { client: this.id, progName: this.info.progName, bundleId: this.info.bundleId });
    this.socket.write(resultMessage(this.version, tag, Result.OK), (err) => {
      if (err || this.state !== 'connecting') {
        this.ctx.engine.closeConnection(conn);
        return;
      }
      this.state = 'connected';
      this.socket.removeAllListeners('data');
      try {
        this.ctx.engine.adoptSocket(conn, this.socket, Buffer.concat(this.pipelined));
      } catch (adoptErr) {
        this.ctx.log.error(`client ${this.id}: handing the socket over failed: ${(adoptErr as Error).message}`);
        this.ctx.engine.closeConnection(conn);
        this.socket.destroy();
      }
      this.pipelined = [];
      this.ctx.forget(this);
    });
  }
}
