// Lockdown framing: a u32 big-endian length, then that many bytes of XML or
// binary plist. A reader that is fed arbitrary chunks and hands back whole
// frames; a length beyond the bound (or zero) is a FramingError, after which
// the connection is to be closed.
import { parsePlist, toXml, type PlistValue } from '../protocol/plist-codec.js';

/** Bound on one incoming frame's body; far above any request a host sends. */
export const MAX_FRAME = 1024 * 1024;

export class FramingError extends Error {
  readonly code = 'ELOCKDOWNFRAME';
  constructor(message: string) {
    super(message);
    this.name = 'FramingError';
  }
}

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(private readonly maxFrame = MAX_FRAME) {}

  /** Adds bytes; returns the frame bodies now complete. Throws FramingError on a bad length. */
  push(chunk: Buffer): Buffer[] {
    this.feed(chunk);
    const frames: Buffer[] = [];
    for (let f = this.next(); f; f = this.next()) frames.push(f);
    return frames;
  }

  /** Adds bytes without parsing them (use next() to take frames one by one). */
  feed(chunk: Buffer): void {
    if (this.failed) throw new FramingError('reader already failed');
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete frame body, or undefined. Throws FramingError on a bad length. */
  next(): Buffer | undefined {
    if (this.failed) throw new FramingError('reader already failed');
    if (this.buffered < 4) return undefined;
    const length = this.peek(4).readUInt32BE(0);
    if (length === 0 || length > this.maxFrame) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      throw new FramingError(`lockdown frame of ${length} bytes (limit ${this.maxFrame})`);
    }
    if (this.buffered < 4 + length) return undefined;
    return this.take(4 + length).subarray(4);
  }

  /**
   * Takes whatever is buffered and not yet a frame: the bytes that follow the
   * last frame taken, handed on when the connection stops speaking plist
   * (e.g. a TLS ClientHello after StartSession).
   */
  drain(): Buffer {
    const rest = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

const BPLIST = Buffer.from('bplist00', 'latin1');

/**
 * Parses one frame body. XML bodies get control bytes other than TAB, LF and
 * CR replaced by spaces first, as libimobiledevice does for iOS 4.3+ devices.
 */
export function decodeBody(body: Buffer): PlistValue {
  if (body.length >= 8 && body.subarray(0, 8).equals(BPLIST)) return parsePlist(body);
  const cleaned = Buffer.from(body);
  for (let i = 0; i < cleaned.length; i++) {
    const b = cleaned[i]!;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) cleaned[i] = 0x20;
  }
  return parsePlist(cleaned);
}

/** One frame: length header plus the value as an XML plist. */
export function encodeFrame(value: PlistValue): Buffer {
  const body = Buffer.from(toXml(value), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** TLS record content types (RFC 5246 §6.2.1). */
export const TLS_CHANGE_CIPHER_SPEC = 0x14;
export const TLS_ALERT = 0x15;
export const TLS_HANDSHAKE = 0x16;
export const TLS_APPLICATION_DATA = 0x17;
/** Largest TLSCiphertext fragment: 2^14 + 2048. */
export const MAX_TLS_RECORD = 16384 + 2048;

/**
 * Splits a byte stream into whole TLS records (5-byte header: type, version
 * major/minor, u16 BE length). Used to run TLS over a pipe so the connection
 * can leave TLS again after a close_notify (StopSession). A header that is not
 * a TLS 1.x record (e.g. a plaintext plist frame) is a FramingError.
 */
export class TlsRecordSplitter {
  private buf: Buffer = Buffer.alloc(0);

  feed(chunk: Buffer): void {
    if (chunk.length) this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
  }

  /** The next whole record (header included), or undefined. */
  next(): Buffer | undefined {
    if (this.buf.length < 5) {
      if (this.buf.length >= 1) this.checkType(this.buf[0]!);
      if (this.buf.length >= 2 && this.buf[1] !== 3) throw new FramingError(`not a TLS record (version major ${this.buf[1]})`);
      return undefined;
    }
    this.checkType(this.buf[0]!);
    if (this.buf[1] !== 3) throw new FramingError(`not a TLS record (version major ${this.buf[1]})`);
    const length = this.buf.readUInt16BE(3);
    if (length > MAX_TLS_RECORD) throw new FramingError(`TLS record of ${length} bytes`);
    if (this.buf.length < 5 + length) return undefined;
    const record = this.buf.subarray(0, 5 + length);
    this.buf = this.buf.subarray(5 + length);
    return record;
  }

  /** Takes the bytes not yet part of a whole record. */
  drain(): Buffer {
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }

  private checkType(type: number): void {
    if (type < TLS_CHANGE_CIPHER_SPEC || type > TLS_APPLICATION_DATA) {
      throw new FramingError(`not a TLS record (content type 0x${type.toString(16)})`);
    }
  }
}
