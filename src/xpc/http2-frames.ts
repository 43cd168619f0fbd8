// The HTTP/2 subset RemoteXPC uses (reference §3.2): prior knowledge (the
// 24-byte preface, no TLS), 9-byte frame headers, and HEADERS frames with an
// empty header block, which node:http2 cannot send. Encoders for each frame
// type and an incremental parser that checks every frame's shape.
import { Http2Error } from './errors.js';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_SIZE = 9;
/** Largest payload a 24-bit length can announce; the simulator accepts DATA frames this big (§3.2.2). */
export const MAX_FRAME_PAYLOAD = 0xffffff;
/** SETTINGS_MAX_FRAME_SIZE's default: what we write per DATA frame at most. */
export const DEFAULT_MAX_FRAME_SIZE = 16384;

export const FrameType = {
  data: 0x0,
  headers: 0x1,
  priority: 0x2,
  rstStream: 0x3,
  settings: 0x4,
  pushPromise: 0x5,
  ping: 0x6,
  goaway: 0x7,
  windowUpdate: 0x8,
  continuation: 0x9,
} as const;

export const FrameFlag = {
  ack: 0x1,
  endStream: 0x1,
  endHeaders: 0x4,
  padded: 0x8,
  priority: 0x20,
} as const;

export const Setting = {
  headerTableSize: 0x1,
  enablePush: 0x2,
  maxConcurrentStreams: 0x3,
  initialWindowSize: 0x4,
  maxFrameSize: 0x5,
  maxHeaderListSize: 0x6,
} as const;

export const ErrorCode = { noError: 0x0, protocolError: 0x1, streamClosed: 0x5 } as const;

/** The streams of a RemoteXPC connection (§3.2). */
export const ROOT_CHANNEL = 1;
export const REPLY_CHANNEL = 3;

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  /** The payload as sent (padding included). */
  payload: Buffer;
}

export function encodeFrame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new Http2Error('EH2FRAME', `a frame payload of ${payload.length} bytes`);
  const out = Buffer.alloc(FRAME_HEADER_SIZE + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(stream & 0x7fffffff, 5);
  payload.copy(out, FRAME_HEADER_SIZE);
  return out;
}

export const frameBytes = (f: Frame): Buffer => encodeFrame(f.type, f.flags, f.stream, f.payload);

export function settingsFrame(settings: Array<[id: number, value: number]>): Frame {
  const payload = Buffer.alloc(settings.length * 6);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value >>> 0, i * 6 + 2);
  });
  return { type: FrameType.settings, flags: 0, stream: 0, payload };
}

export const settingsAckFrame = (): Frame => ({ type: FrameType.settings, flags: FrameFlag.ack, stream: 0, payload: Buffer.alloc(0) });

export function windowUpdateFrame(stream: number, increment: number): Frame {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment & 0x7fffffff, 0);
  return { type: FrameType.windowUpdate, flags: 0, stream, payload };
}

/** HEADERS with END_HEADERS and an empty header block, as every RemoteXPC peer sends. */
export const headersFrame = (stream: number): Frame => ({
  type: FrameType.headers,
  flags: FrameFlag.endHeaders,
  stream,
  payload: Buffer.alloc(0),
});

export const dataFrame = (stream: number, payload: Buffer, flags = 0): Frame => ({ type: FrameType.data, flags, stream, payload });

export function rstStreamFrame(stream: number, code: number): Frame {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code, 0);
  return { type: FrameType.rstStream, flags: 0, stream, payload };
}

export function goawayFrame(lastStream: number, code: number, debug = ''): Frame {
  const payload = Buffer.concat([Buffer.alloc(8), Buffer.from(debug, 'utf8')]);
  payload.writeUInt32BE(lastStream & 0x7fffffff, 0);
  payload.writeUInt32BE(code, 4);
  return { type: FrameType.goaway, flags: 0, stream: 0, payload };
}

export function pingFrame(opaque: Buffer, ack = false): Frame {
  if (opaque.length !== 8) throw new Http2Error('EH2FRAME', 'PING carries 8 bytes');
  return { type: FrameType.ping, flags: ack ? FrameFlag.ack : 0, stream: 0, payload: Buffer.from(opaque) };
}

/** A message's bytes as DATA frames of at most `maxFrame` bytes each, all on one stream. */
export function dataFrames(stream: number, message: Buffer, maxFrame = DEFAULT_MAX_FRAME_SIZE): Frame[] {
  const frames: Frame[] = [];
  for (let at = 0; at < message.length; at += maxFrame) frames.push(dataFrame(stream, message.subarray(at, at + maxFrame)));
  if (frames.length === 0) frames.push(dataFrame(stream, Buffer.alloc(0)));
  return frames;
}

export function parseSettings(f: Frame): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let at = 0; at + 6 <= f.payload.length; at += 6) out.push([f.payload.readUInt16BE(at), f.payload.readUInt32BE(at + 2)]);
  return out;
}

/** The application data of a DATA frame (padding removed). */
export function dataOf(f: Frame): Buffer {
  if (!(f.flags & FrameFlag.padded)) return f.payload;
  const padLength = f.payload[0]!;
  return f.payload.subarray(1, f.payload.length - padLength);
}

export const frameTypeName = (type: number): string =>
  Object.entries(FrameType).find(([, v]) => v === type)?.[0] ?? `0x${type.toString(16)}`;

function checkFrame(f: Frame): void {
  const bad = (why: string) => new Http2Error('EH2FRAME', `${frameTypeName(f.type)} frame on stream ${f.stream}: ${why}`);
  const len = f.payload.length;
  switch (f.type) {
    case FrameType.data:
    case FrameType.headers: {
      if (f.stream === 0) throw bad('needs a stream');
      let min = 0;
      if (f.flags & FrameFlag.padded) min += 1 + (len ? f.payload[0]! : 0);
      if (f.type === FrameType.headers && f.flags & FrameFlag.priority) min += 5;
      if (len < min) throw bad('padding longer than the payload');
      return;
    }
    case FrameType.settings:
      if (f.stream !== 0) throw bad('must be on stream 0');
      if (f.flags & FrameFlag.ack ? len !== 0 : len % 6 !== 0) throw bad(`length ${len}`);
      return;
    case FrameType.windowUpdate:
      if (len !== 4) throw bad(`length ${len}`);
      if ((f.payload.readUInt32BE(0) & 0x7fffffff) === 0) throw bad('zero increment');
      return;
    case FrameType.rstStream:
      if (f.stream === 0) throw bad('needs a stream');
      if (len !== 4) throw bad(`length ${len}`);
      return;
    case FrameType.ping:
      if (f.stream !== 0 || len !== 8) throw bad(`stream ${f.stream}, length ${len}`);
      return;
    case FrameType.goaway:
      if (f.stream !== 0 || len < 8) throw bad(`stream ${f.stream}, length ${len}`);
      return;
    default:
      // Unknown and unused types are allowed and ignored (RFC 9113 §4.1).
      return;
  }
}

/**
 * Incremental frame parser. With `expectPreface` (the server side) the first
 * 24 bytes must be the client preface. A frame longer than `maxPayload` fails
 * on its header, before its payload is buffered.
 */
export class FrameParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private prefaceLeft: boolean;

  constructor(
    options: { expectPreface?: boolean; maxPayload?: number } = {},
    private readonly maxPayload = options.maxPayload ?? MAX_FRAME_PAYLOAD,
  ) {
    this.prefaceLeft = options.expectPreface ?? false;
  }

  /** Adds bytes; returns the frames now complete. Throws Http2Error (the connection is then unusable). */
  push(chunk: Buffer): Frame[] {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    if (this.prefaceLeft) {
      const n = Math.min(this.buffered, PREFACE.length);
      if (n === 0) return [];
      if (!this.peek(n).equals(PREFACE.subarray(0, n))) throw new Http2Error('EH2PREFACE', 'not the HTTP/2 client preface');
      if (n < PREFACE.length) return [];
      this.take(PREFACE.length);
      this.prefaceLeft = false;
    }
    const frames: Frame[] = [];
    // Bytes are joined only once a whole frame is in, so a big frame arriving
    // in many chunks is copied once.
    while (this.buffered >= FRAME_HEADER_SIZE) {
      const header = this.peek(FRAME_HEADER_SIZE);
      const length = header.readUIntBE(0, 3);
      if (length > this.maxPayload) throw new Http2Error('EH2FRAME', `a frame of ${length} bytes (limit ${this.maxPayload})`);
      if (this.buffered < FRAME_HEADER_SIZE + length) break;
      const bytes = this.take(FRAME_HEADER_SIZE + length);
      const frame: Frame = {
        type: bytes[3]!,
        flags: bytes[4]!,
        stream: bytes.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(bytes.subarray(FRAME_HEADER_SIZE)),
      };
      checkFrame(frame);
      frames.push(frame);
    }
    return frames;
  }

  get prefaceSeen(): boolean {
    return !this.prefaceLeft;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0]!;
    const out = first.subarray(0, n);
    if (first.length > n) this.chunks[0] = first.subarray(n);
    else this.chunks.shift();
    this.buffered -= n;
    return out;
  }
}
