// The device (server) role of one RemoteXPC connection: frames in, events to
// the rule table, the frames it answers with out, each written in reaction
// to the client frame that calls for it (a recorded handshake replayed up
// front is refused by real clients). After the handshake, requests on
// stream 1 that want a reply go to `onRequest`; the answer goes out on
// stream 3 with the request's message id. A malformed frame or message ends
// the connection with GOAWAY(PROTOCOL_ERROR); while healthy the device never
// sends RST_STREAM or GOAWAY.
import type { Socket } from 'node:net';

import { Http2Error, XpcError } from './errors.js';
import {
  dataFrames,
  dataOf,
  ErrorCode,
  frameBytes,
  FrameParser,
  FrameType,
  goawayFrame,
  pingFrame,
  REPLY_CHANNEL,
  ROOT_CHANNEL,
  windowUpdateFrame,
  type Frame,
} from './http2-frames.js';
import { decodeMessage, encodeMessage, MessageAssembler, MAX_MESSAGE_BODY, XpcFlags, type XpcMessage } from './message.js';
import { DEVICE_MAX_CONCURRENT_STREAMS } from './device-rules.js';
import { RuleDispatcher, type PeerEvent, type Rule } from './rules.js';
import type { XpcDictionary } from './values.js';

/** Reply flags for a request that wanted one (§3.4): ALWAYS_SET | DATA_PRESENT | REPLY. */
export const REPLY_FLAGS = XpcFlags.alwaysSet | XpcFlags.dataPresent | XpcFlags.reply;
/** Give the client more window once this much has been consumed (§3.2.2). */
const WINDOW_REFILL = 1024 * 1024;

export interface DeviceConnectionOptions {
  rules: Rule[];
  /** Answers a request that wants a reply (undefined: no answer). */
  onRequest?: (message: XpcMessage) => Promise<XpcDictionary | undefined> | XpcDictionary | undefined;
  /**
   * Protocol housekeeping beyond the table: PING ACKs and window refills
   * (default true; a replay turns it off so its bytes are the recording's).
   */
  housekeeping?: boolean;
  maxMessageBody?: number;
  /** Bound on partial messages buffered over all streams (default 64 MiB). */
  maxBuffered?: number;
  /** Every frame written, for tests and logs. */
  onFrameOut?: (frame: Frame) => void;
  onError?: (err: Error) => void;
}

export class DeviceConnection {
  readonly dispatcher: RuleDispatcher;
  private readonly parser = new FrameParser({ expectPreface: true });
  private readonly assemblers = new Map<number, MessageAssembler>();
  private readonly opened = new Set<number>();
  private consumed = new Map<number, number>();
  private closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly options: DeviceConnectionOptions,
  ) {
    this.dispatcher = new RuleDispatcher(options.rules);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closed = true;
    });
    this.react({ kind: 'connect' });
  }

  private write(frames: Frame[]): void {
    if (this.closed || this.socket.destroyed) return;
    for (const f of frames) this.options.onFrameOut?.(f);
    if (frames.length) this.socket.write(Buffer.concat(frames.map(frameBytes)));
  }

  private react(event: PeerEvent): void {
    this.write(this.dispatcher.observe(event));
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.options.onError?.(err);
    this.write([goawayFrame(Math.max(0, ...this.opened), ErrorCode.protocolError, err.message.slice(0, 200))]);
    this.closed = true;
    // GOAWAY goes out first; a peer that then keeps the socket open (or
    // stops reading) is cut off.
    this.socket.end(() => this.socket.destroy());
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      for (const frame of this.parser.push(chunk)) {
        this.onFrame(frame);
        if (this.closed) return;
      }
    } catch (err) {
      // Whatever went wrong ends this connection only; the process stays up.
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private onFrame(frame: Frame): void {
    const housekeeping = this.options.housekeeping ?? true;
    if (frame.type === FrameType.headers) {
      this.opened.add(frame.stream);
      if (this.opened.size > DEVICE_MAX_CONCURRENT_STREAMS) {
        throw new Http2Error('EH2PROTOCOL', `more than ${DEVICE_MAX_CONCURRENT_STREAMS} streams opened`);
      }
    }
    if (frame.type !== FrameType.data) {
      if (frame.type === FrameType.ping && !(frame.flags & 1) && housekeeping) this.write([pingFrame(frame.payload, true)]);
      this.react({ kind: 'frame', frame });
      return;
    }
    if (!this.opened.has(frame.stream)) throw new Http2Error('EH2PROTOCOL', `DATA on stream ${frame.stream} before its HEADERS`);
    const data = dataOf(frame);
    let assembler = this.assemblers.get(frame.stream);
    if (!assembler) this.assemblers.set(frame.stream, (assembler = new MessageAssembler(this.options.maxMessageBody ?? MAX_MESSAGE_BODY)));
    for (const raw of assembler.push(data)) {
      const message = decodeMessage(raw, this.options.maxMessageBody);
      this.react({ kind: 'message', stream: frame.stream, message, raw });
      if (frame.stream === ROOT_CHANNEL && message.flags & XpcFlags.wantingReply) void this.answer(message);
    }
    let buffered = 0;
    for (const a of this.assemblers.values()) buffered += a.bufferedBytes;
    if (buffered > (this.options.maxBuffered ?? MAX_MESSAGE_BODY)) {
      throw new XpcError('EXPCLENGTH', `${buffered} bytes of unfinished XPC messages buffered`);
    }
    if (housekeeping) this.refill(frame.stream, frame.payload.length);
  }

  private refill(stream: number, n: number): void {
    for (const s of [0, stream]) {
      const total = (this.consumed.get(s) ?? 0) + n;
      if (total >= WINDOW_REFILL) {
        this.write([windowUpdateFrame(s, total)]);
        this.consumed.set(s, 0);
      } else this.consumed.set(s, total);
    }
  }

  private async answer(request: XpcMessage): Promise<void> {
    if (!this.options.onRequest) return;
    try {
      const body = await this.options.onRequest(request);
      if (body === undefined) return;
      this.write(dataFrames(REPLY_CHANNEL, encodeMessage({ flags: REPLY_FLAGS, messageId: request.messageId, body })));
    } catch (err) {
      this.options.onError?.(err as Error);
    }
  }
}
