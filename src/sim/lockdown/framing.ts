// Lockdown framing: a u32 big-endian length, then that many bytes of XML or
// binary plist. A reader that is fed arbitrary chunks and hands back whole
// frames; a length beyond the bound (or zero) is a FramingError, after which
// the connection is to be closed.
import { parsePlist, toXml, type PlistValue } from '../../pairing/plist-codec.js';

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
    if (this.failed) throw new FramingError('reader already failed');
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Buffer[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length === 0 || length > this.maxFrame) {
        this.failed = true;
        this.chunks = [];
        this.buffered = 0;
        throw new FramingError(`lockdown frame of ${length} bytes (limit ${this.maxFrame})`);
      }
      if (this.buffered < 4 + length) break;
      const all = this.take(4 + length);
      frames.push(all.subarray(4));
    }
    return frames;
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
