// The XPC wrapper (reference §3.1.1), all little-endian: magic 0x29B00B92,
// flags, body length (everything after the 24-byte header) and message id;
// a body is the payload magic 0x42133742, version 5 and one dictionary.
import { XpcError } from './errors.js';
import { encodeObject, ObjectReader } from './object-codec.js';
import { isDictionary, type XpcDictionary } from './values.js';

export const WRAPPER_MAGIC = 0x29b00b92;
export const PAYLOAD_MAGIC = 0x42133742;
export const PAYLOAD_VERSION = 5;
export const HEADER_SIZE = 24;
/** Default bound on one message's body; far above any handshake or CoreDevice request. */
export const MAX_MESSAGE_BODY = 64 * 1024 * 1024;

export const XpcFlags = {
  alwaysSet: 0x00000001,
  ping: 0x00000002,
  dataPresent: 0x00000100,
  /** Only in the handshake's "0x201" message on stream 1. */
  handshake201: 0x00000200,
  wantingReply: 0x00010000,
  reply: 0x00020000,
  fileTxStreamRequest: 0x00100000,
  fileTxStreamResponse: 0x00200000,
  initHandshake: 0x00400000,
} as const;

export interface XpcMessage {
  flags: number;
  messageId: bigint;
  /** Absent for a header-only message (body length 0). */
  body?: XpcDictionary;
}

export function encodeMessage(m: XpcMessage): Buffer {
  const payload = m.body === undefined ? undefined : encodeObject(m.body);
  const bodyLength = payload === undefined ? 0 : payload.length + 8;
  const out = Buffer.alloc(HEADER_SIZE + bodyLength);
  out.writeUInt32LE(WRAPPER_MAGIC, 0);
  out.writeUInt32LE(m.flags >>> 0, 4);
  out.writeBigUInt64LE(BigInt(bodyLength), 8);
  out.writeBigUInt64LE(m.messageId, 16);
  if (payload) {
    out.writeUInt32LE(PAYLOAD_MAGIC, 24);
    out.writeUInt32LE(PAYLOAD_VERSION, 28);
    payload.copy(out, 32);
  }
  return out;
}

export interface MessageHeader {
  flags: number;
  messageId: bigint;
  bodyLength: number;
}

/** Reads and checks a 24-byte wrapper header; the body length is bounded before anything is allocated. */
export function readHeader(bytes: Buffer, maxBody = MAX_MESSAGE_BODY): MessageHeader {
  if (bytes.length < HEADER_SIZE) throw new XpcError('EXPCTRUNCATED', `XPC header needs 24 bytes, got ${bytes.length}`);
  const magic = bytes.readUInt32LE(0);
  if (magic !== WRAPPER_MAGIC) throw new XpcError('EXPCMAGIC', `XPC wrapper magic 0x${magic.toString(16)}`);
  const length = bytes.readBigUInt64LE(8);
  if (length > BigInt(maxBody)) throw new XpcError('EXPCLENGTH', `XPC body of ${length} bytes (limit ${maxBody})`);
  const bodyLength = Number(length);
  if (bodyLength > 0 && bodyLength < 8) throw new XpcError('EXPCLENGTH', `XPC body of ${bodyLength} bytes cannot hold the payload header`);
  return { flags: bytes.readUInt32LE(4), messageId: bytes.readBigUInt64LE(16), bodyLength };
}

function checkPayloadHeader(bytes: Buffer): void {
  const magic = bytes.readUInt32LE(24);
  if (magic !== PAYLOAD_MAGIC) throw new XpcError('EXPCMAGIC', `XPC payload magic 0x${magic.toString(16)}`);
  const version = bytes.readUInt32LE(28);
  if (version !== PAYLOAD_VERSION) throw new XpcError('EXPCMAGIC', `XPC payload version ${version}`);
}

/** One whole message: `bytes` must be exactly the header plus its body. */
export function decodeMessage(bytes: Buffer, maxBody = MAX_MESSAGE_BODY): XpcMessage {
  const header = readHeader(bytes, maxBody);
  const total = HEADER_SIZE + header.bodyLength;
  if (bytes.length < total) throw new XpcError('EXPCTRUNCATED', `XPC message needs ${total} bytes, got ${bytes.length}`);
  if (bytes.length > total) throw new XpcError('EXPCTRAILING', `${bytes.length - total} bytes after the XPC message`);
  const message: XpcMessage = { flags: header.flags, messageId: header.messageId };
  if (header.bodyLength === 0) return message;
  checkPayloadHeader(bytes);
  const reader = new ObjectReader(bytes, 32, total);
  const body = reader.object();
  if (!isDictionary(body)) throw new XpcError('EXPCVALUE', 'the top-level XPC object is not a dictionary');
  if (reader.remaining !== 0) throw new XpcError('EXPCTRAILING', `${reader.remaining} bytes after the top-level dictionary`);
  message.body = body;
  return message;
}

/** Where each top-level value of a whole message starts (offsets into `bytes`). */
export function topLevelOffsets(bytes: Buffer): Map<string, number> {
  const header = readHeader(bytes);
  if (header.bodyLength === 0) return new Map();
  checkPayloadHeader(bytes);
  return new ObjectReader(bytes, 32, HEADER_SIZE + header.bodyLength).dictionaryOffsets();
}

/**
 * Splits a byte stream into whole messages. Several may arrive in one chunk
 * and one may span many; a header is checked as soon as its 24 bytes are in,
 * so a huge announced length fails before any body is buffered.
 */
export class MessageAssembler {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private pending?: MessageHeader;

  constructor(private readonly maxBody = MAX_MESSAGE_BODY) {}

  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Adds bytes; returns the raw bytes of each message now complete. Throws XpcError. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Buffer[] = [];
    for (;;) {
      if (!this.pending) {
        if (this.buffered < HEADER_SIZE) break;
        this.pending = readHeader(this.peek(HEADER_SIZE), this.maxBody);
      }
      const total = HEADER_SIZE + this.pending.bodyLength;
      if (this.buffered < total) break;
      out.push(this.take(total));
      this.pending = undefined;
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = joined.length > n ? [joined.subarray(n)] : [];
    this.buffered -= n;
    return joined.subarray(0, n);
  }
}
