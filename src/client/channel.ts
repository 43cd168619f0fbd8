// One connection to a usbmuxd-compatible daemon: sends requests, matches
// replies by tag, and queues notifications. A channel ends up as what its last
// request made it: a command channel, a Listen pipe, or a raw connection.
import { once } from 'node:events';
import net from 'node:net';

import { isPlistDict, parsePlist, toXml, type PlistDict } from '../protocol/plist-codec.js';
import { clientSocketAddress, formatSocketAddress, parseSocketAddress, type SocketAddress } from '../protocol/address.js';
import {
  decodeDeviceAdd,
  encodeMessage,
  MAX_REPLY_LENGTH,
  MessageFramer,
  MessageType,
  ProtocolVersion,
  type Message,
} from '../protocol/usbmux.js';

export class UsbmuxError extends Error {
  readonly code: string;
  readonly result?: number;
  constructor(message: string, code: string, result?: number) {
    super(message);
    this.name = 'UsbmuxError';
    this.code = code;
    this.result = result;
  }
}

const RESULT_NAMES: Record<number, string> = { 0: 'OK', 1: 'BADCOMMAND', 2: 'BADDEV', 3: 'CONNREFUSED', 6: 'BADVERSION', 22: 'EINVAL' };

/** A non-zero Result; `detail` is the Error string tsmuxd's own requests add to say why. */
export function resultError(result: number, what: string, detail?: string): UsbmuxError {
  const name = RESULT_NAMES[result] ?? `RESULT_${result}`;
  const why = detail ? `${detail} (Result ${result})` : `the daemon answered ${result} (${name})`;
  return new UsbmuxError(`${what}: ${why}`, name, result);
}

/** A reply or notification, decoded for either protocol version. */
export type Reply =
  /** `dict`: a plist Result's whole dictionary (tsmuxd's tunnel requests add fields to it). */
  | { kind: 'result'; tag: number; result: number; dict?: PlistDict }
  | { kind: 'plist'; tag: number; dict: PlistDict }
  | { kind: 'attached'; deviceId: number; productId: number; serial: string; location: number }
  | { kind: 'removed' | 'paired'; deviceId: number };

export function decodeReply({ header, body }: Message): Reply {
  switch (header.message) {
    case MessageType.Result:
      return { kind: 'result', tag: header.tag, result: u32Body(body, 'Result') };
    case MessageType.Plist: {
      const dict = parsePlist(body);
      // A daemon's reply is always a dict; anything else would be read as one below.
      if (!isPlistDict(dict)) throw new UsbmuxError('a plist reply that is not a dictionary', 'ERR_USBMUX_PROTOCOL');
      if (dict.MessageType === 'Result') return { kind: 'result', tag: header.tag, result: Number(dict.Number), dict };
      return { kind: 'plist', tag: header.tag, dict };
    }
    case MessageType.DeviceAdd:
      return { kind: 'attached', ...decodeDeviceAdd(body) };
    case MessageType.DeviceRemove:
      return { kind: 'removed', deviceId: u32Body(body, 'DeviceRemove') };
    case MessageType.DevicePaired:
      return { kind: 'paired', deviceId: u32Body(body, 'DevicePaired') };
    default:
      throw new UsbmuxError(`unknown message type ${header.message}`, 'ERR_USBMUX_PROTOCOL');
  }
}

/** The u32 a binary reply carries; a shorter body is a broken daemon, not a RangeError. */
function u32Body(body: Buffer, what: string): number {
  if (body.length < 4) throw new UsbmuxError(`a ${what} message with a ${body.length}-byte body`, 'ERR_USBMUX_PROTOCOL');
  return body.readUInt32LE(0);
}

export interface ChannelOptions {
  address?: SocketAddress | string;
  /** 1 (plist, what every modern client speaks) or 0 (binary). */
  version?: 0 | 1;
  timeoutMs?: number;
  progName?: string;
}

export class Channel {
  readonly socket: net.Socket;
  readonly version: 0 | 1;
  private readonly framer = new MessageFramer(MAX_REPLY_LENGTH);
  private readonly queue: Reply[] = [];
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  private nextTag = 1;
  private raw = false;

  private constructor(socket: net.Socket, private readonly options: ChannelOptions) {
    this.socket = socket;
    this.version = options.version ?? 1;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.fail(new UsbmuxError('the daemon closed the connection', 'ECONNRESET')));
    socket.on('error', (err) => this.fail(err));
  }

  static async open(options: ChannelOptions = {}): Promise<Channel> {
    const a = typeof options.address === 'string' ? parseSocketAddress(options.address) : (options.address ?? clientSocketAddress());
    const socket = a.kind === 'unix' ? net.connect(a.path) : net.connect(a.port, a.host);
    try {
      // once() rejects with the socket's 'error'.
      await once(socket, 'connect');
    } catch (err) {
      socket.destroy();
      throw new UsbmuxError(`cannot reach the daemon at ${formatSocketAddress(a)}: ${(err as Error).message}`, 'ECONNREFUSED');
    }
    return new Channel(socket, options);
  }

  private onData(chunk: Buffer): void {
    if (this.raw) return;
    this.framer.push(chunk);
    try {
      for (let m = this.framer.next(); m; m = this.framer.next()) this.queue.push(decodeReply(m));
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.wake();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private async waitMore(deadline: number, timeoutMs: number): Promise<void> {
    if (this.failure) throw this.failure;
    const left = deadline - Date.now();
    if (left <= 0) throw new UsbmuxError(`no answer within ${timeoutMs} ms`, 'ETIMEDOUT');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      this.waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** The next reply or notification, in arrival order. */
  async next(timeoutMs = this.options.timeoutMs ?? 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) await this.waitMore(deadline, timeoutMs);
    return this.queue.shift()!;
  }

  /** The reply with this tag; notifications that came first stay queued. */
  async reply(tag: number, timeoutMs = this.options.timeoutMs ?? 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.queue.findIndex((r) => (r.kind === 'result' || r.kind === 'plist') && r.tag === tag);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      await this.waitMore(deadline, timeoutMs);
    }
  }

  /** Sends a plist request (version 1) and returns its tag. */
  sendPlist(request: PlistDict): number {
    const tag = this.nextTag++;
    const dict: PlistDict = {
      ClientVersionString: 'tsmuxd-client',
      ProgName: this.options.progName ?? 'tsmuxd',
      kLibUSBMuxVersion: 3,
      ...request,
    };
    this.socket.write(encodeMessage(ProtocolVersion.Plist, MessageType.Plist, tag, Buffer.from(toXml(dict), 'utf8')));
    return tag;
  }

  /** Sends a binary (version 0) request and returns its tag. */
  sendBinary(message: number, body: Buffer = Buffer.alloc(0), tag = this.nextTag++): number {
    this.socket.write(encodeMessage(ProtocolVersion.Binary, message, tag, body));
    return tag;
  }

  /** After a successful Connect: stop parsing, hand back the raw socket. */
  release(): net.Socket {
    this.raw = true;
    // Stay paused until the caller listens: a service that speaks first
    // (heartbeat's Marco) must not lose its first bytes in between.
    this.socket.pause();
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    const rest = this.framer.takeRemainder();
    if (rest.length) this.socket.unshift(rest);
    const resumeOnListen = (event: string | symbol) => {
      if (event !== 'data') return;
      this.socket.off('newListener', resumeOnListen);
      process.nextTick(() => this.socket.resume());
    };
    this.socket.on('newListener', resumeOnListen);
    return this.socket;
  }

  close(): void {
    this.socket.destroy();
  }
}
