// The host (client) role of a RemoteXPC connection: the handshake in one of
// the three orderings real clients use (reference §3.2.1), then requests on
// ROOT_CHANNEL (stream 1) whose replies come on REPLY_CHANNEL (stream 3).
// The next message id follows the last reply's id + 1, as pymobiledevice3
// does; the device echoes ids and does not check them.
import { connect, type Socket } from 'node:net';

import { Http2Error } from './errors.js';
import {
  dataFrames,
  dataOf,
  frameBytes,
  FrameParser,
  FrameType,
  headersFrame,
  parseSettings,
  PREFACE,
  REPLY_CHANNEL,
  ROOT_CHANNEL,
  Setting,
  settingsAckFrame,
  settingsFrame,
  windowUpdateFrame,
  type Frame,
} from './http2-frames.js';
import { decodeMessage, encodeMessage, MessageAssembler, XpcFlags, type XpcMessage } from './message.js';
import { HANDSHAKE_A_FLAGS, HANDSHAKE_B_FLAGS, HANDSHAKE_C_FLAGS } from './device-rules.js';
import type { XpcDictionary } from './values.js';

export type HandshakeOrdering = 'pymobiledevice3' | 'idevice' | 'go-ios';
export const HANDSHAKE_ORDERINGS: readonly HandshakeOrdering[] = ['pymobiledevice3', 'idevice', 'go-ios'];

/** Requests: ALWAYS_SET | DATA_PRESENT | WANTING_REPLY (captured as 0x00010101). */
export const REQUEST_FLAGS = XpcFlags.alwaysSet | XpcFlags.dataPresent | XpcFlags.wantingReply;

const HOST_INITIAL_WINDOW = 16 * 1024 * 1024;

/** A message that only completes the handshake: header-only or an empty dictionary. */
export const isHandshakeNoise = (m: XpcMessage): boolean => m.body === undefined || m.body.size === 0;

type Waiter = { resolve: (m: XpcMessage) => void; reject: (e: Error) => void };

export class HostConnection {
  private readonly parser = new FrameParser();
  private readonly assemblers = new Map<number, MessageAssembler>();
  private readonly inbox = new Map<number, XpcMessage[]>();
  private readonly waiters = new Map<number, Waiter[]>();
  private frameWaiters: Array<{ type: number; resolve: (f: Frame) => void; reject: (e: Error) => void }> = [];
  private failure?: Error;
  private nextId = 1n;
  private readonly framesHanded = new Map<number, number>();
  /** Every frame received, in order (for tests and logs). */
  readonly received: Frame[] = [];

  constructor(readonly socket: Socket) {
    // The preface goes first, before anything this side could answer (a
    // SETTINGS ACK for a device SETTINGS that comes before the handshake).
    socket.write(PREFACE);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.abort(err));
    socket.on('close', () => this.abort(new Http2Error('EH2CLOSED', 'the RemoteXPC connection closed')));
  }

  static async open(host: string, port: number, timeoutMs = 10_000): Promise<HostConnection> {
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Http2Error('EH2CLOSED', `no answer from ${host}:${port} in ${timeoutMs} ms`)));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new HostConnection(socket);
  }

  private abort(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const list of this.waiters.values()) for (const w of list) w.reject(err);
    this.waiters.clear();
    for (const w of this.frameWaiters) w.reject(err);
    this.frameWaiters = [];
  }

  send(...frames: Frame[]): void {
    this.socket.write(Buffer.concat(frames.map(frameBytes)));
  }

  sendMessage(stream: number, message: XpcMessage): void {
    this.send(...dataFrames(stream, encodeMessage(message)));
  }

  private onData(chunk: Buffer): void {
    try {
      for (const frame of this.parser.push(chunk)) this.onFrame(frame);
    } catch (err) {
      this.abort(err instanceof Error ? err : new Error(String(err)));
      this.socket.destroy();
    }
  }

  private onFrame(frame: Frame): void {
    this.received.push(frame);
    // A waiter registered before this frame came was counted as handed already.
    const i = this.frameWaiters.findIndex((w) => w.type === frame.type);
    if (i >= 0) this.frameWaiters.splice(i, 1)[0]!.resolve(frame);
    if (frame.type === FrameType.settings && !(frame.flags & 1)) this.send(settingsAckFrame());
    if (frame.type === FrameType.goaway) throw new Http2Error('EH2GOAWAY', `the device sent GOAWAY (error ${frame.payload.readUInt32BE(4)})`);
    if (frame.type === FrameType.rstStream) {
      throw new Http2Error('EH2RESET', `the device reset stream ${frame.stream} (error ${frame.payload.readUInt32BE(0)})`);
    }
    if (frame.type !== FrameType.data) return;
    let assembler = this.assemblers.get(frame.stream);
    if (!assembler) this.assemblers.set(frame.stream, (assembler = new MessageAssembler()));
    for (const raw of assembler.push(dataOf(frame))) this.deliver(frame.stream, decodeMessage(raw));
  }

  private deliver(stream: number, message: XpcMessage): void {
    const w = this.waiters.get(stream)?.shift();
    if (w) w.resolve(message);
    else {
      const list = this.inbox.get(stream) ?? [];
      list.push(message);
      this.inbox.set(stream, list);
    }
  }

  /** The next whole message on `stream`. */
  nextMessage(stream: number): Promise<XpcMessage> {
    const queued = this.inbox.get(stream)?.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(stream) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(stream, list);
    });
  }

  /** The next frame of a type not handed out yet (it may have arrived already). */
  nextFrame(type: number): Promise<Frame> {
    const handed = this.framesHanded.get(type) ?? 0;
    const arrived = this.received.filter((f) => f.type === type);
    this.framesHanded.set(type, handed + 1);
    if (arrived.length > handed) return Promise.resolve(arrived[handed]!);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.frameWaiters.push({ type, resolve, reject }));
  }

  /** The client side of the handshake, in the given client's order. */
  async handshake(ordering: HandshakeOrdering = 'pymobiledevice3'): Promise<void> {
    const a: XpcMessage = { flags: HANDSHAKE_A_FLAGS, messageId: 0n, body: new Map() };
    const b: XpcMessage = { flags: HANDSHAKE_B_FLAGS, messageId: 0n };
    const c: XpcMessage = { flags: HANDSHAKE_C_FLAGS, messageId: 0n };
    const settings = settingsFrame([
      [Setting.maxConcurrentStreams, 100],
      [Setting.initialWindowSize, ordering === 'pymobiledevice3' ? HOST_INITIAL_WINDOW : 1024 * 1024],
    ]);
    const increment = parseSettings(settings)[1]![1] - 65535;
    if (ordering === 'go-ios') {
      const deviceSettings = this.nextFrame(FrameType.settings);
      this.send(settings, windowUpdateFrame(0, increment));
      await deviceSettings;
      this.send(headersFrame(ROOT_CHANNEL));
      this.sendMessage(ROOT_CHANNEL, a);
      await this.nextMessage(ROOT_CHANNEL);
      this.send(headersFrame(REPLY_CHANNEL));
      this.sendMessage(REPLY_CHANNEL, b);
      await this.nextMessage(REPLY_CHANNEL);
      this.sendMessage(ROOT_CHANNEL, c);
      await this.nextMessage(ROOT_CHANNEL);
      return;
    }
    const deviceSettings = this.nextFrame(FrameType.settings);
    this.send(settings, windowUpdateFrame(0, increment), headersFrame(ROOT_CHANNEL));
    this.sendMessage(ROOT_CHANNEL, a);
    this.send(headersFrame(REPLY_CHANNEL));
    const [first, second] = ordering === 'idevice' ? [b, c] : [c, b];
    this.sendMessage(first === b ? REPLY_CHANNEL : ROOT_CHANNEL, first);
    this.sendMessage(second === b ? REPLY_CHANNEL : ROOT_CHANNEL, second);
    if (ordering === 'pymobiledevice3') await deviceSettings;
  }

  /** The next stream-1 message that carries a body, skipping handshake answers. */
  async nextRootMessage(): Promise<XpcMessage> {
    for (;;) {
      const m = await this.nextMessage(ROOT_CHANNEL);
      if (!isHandshakeNoise(m)) return m;
    }
  }

  /** A request on stream 1; its reply is the next message with a body on stream 3. */
  async request(body: XpcDictionary): Promise<XpcMessage> {
    const id = this.nextId;
    this.sendMessage(ROOT_CHANNEL, { flags: REQUEST_FLAGS, messageId: id, body });
    for (;;) {
      const reply = await this.nextMessage(REPLY_CHANNEL);
      if (isHandshakeNoise(reply)) continue;
      this.nextId = reply.messageId + 1n;
      return reply;
    }
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}
