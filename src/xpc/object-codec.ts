// XPC objects on the wire (reference §3.1.3): a u32 little-endian type code,
// then the body; every object starts 4-byte aligned. Arrays and dictionaries
// carry a byte length (which includes their count field) and a count; the
// decoder parses by count, as every host does, and only checks that the
// length stays inside the input (go-ios writes array lengths without the
// count). Nothing is allocated from a length before the bytes are there.
import { XpcError } from './errors.js';
import {
  Int64,
  isDictionary,
  UInt64,
  Uuid,
  XpcDate,
  XpcEndpoint,
  XpcFd,
  XpcFileTransfer,
  type XpcDictionary,
  type XpcValue,
} from './values.js';

export const XpcType = {
  null: 0x1000,
  bool: 0x2000,
  int64: 0x3000,
  uint64: 0x4000,
  double: 0x5000,
  date: 0x7000,
  data: 0x8000,
  string: 0x9000,
  uuid: 0xa000,
  fd: 0xb000,
  array: 0xe000,
  dictionary: 0xf000,
  endpoint: 0x12000,
  fileTransfer: 0x1a000,
} as const;

/** Arrays and dictionaries nest at most this deep (the top-level dictionary is depth 1). */
export const MAX_DEPTH = 64;

const pad4 = (n: number) => (4 - (n % 4)) % 4;

/** A growable little-endian byte sink. */
class Writer {
  private buf = Buffer.alloc(256);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v >>> 0, this.length);
    this.length += 4;
  }
  u32At(offset: number, v: number): void {
    this.buf.writeUInt32LE(v >>> 0, offset);
  }
  i64(v: bigint): void {
    this.room(8);
    this.buf.writeBigInt64LE(v, this.length);
    this.length += 8;
  }
  u64(v: bigint): void {
    this.room(8);
    this.buf.writeBigUInt64LE(v, this.length);
    this.length += 8;
  }
  f64(v: number): void {
    this.room(8);
    this.buf.writeDoubleLE(v, this.length);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  zeros(n: number): void {
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }
}

function encodeInto(w: Writer, v: XpcValue, depth: number): void {
  if (v === null) return w.u32(XpcType.null);
  if (typeof v === 'boolean') {
    w.u32(XpcType.bool);
    w.u32(v ? 1 : 0);
    return;
  }
  if (typeof v === 'number') {
    w.u32(XpcType.double);
    w.f64(v);
    return;
  }
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    if (s.includes(0)) throw new XpcError('EXPCVALUE', 'an XPC string cannot hold a NUL');
    w.u32(XpcType.string);
    w.u32(s.length + 1);
    w.bytes(s);
    w.zeros(1 + pad4(s.length + 1));
    return;
  }
  if (v instanceof Int64) {
    w.u32(XpcType.int64);
    w.i64(v.value);
    return;
  }
  if (v instanceof UInt64) {
    w.u32(XpcType.uint64);
    w.u64(v.value);
    return;
  }
  if (v instanceof XpcDate) {
    w.u32(XpcType.date);
    w.i64(BigInt.asIntN(64, v.nanoseconds));
    return;
  }
  if (v instanceof Uuid) {
    w.u32(XpcType.uuid);
    w.bytes(v.bytes);
    return;
  }
  if (v instanceof XpcFd) {
    w.u32(XpcType.fd);
    w.u32(v.raw);
    return;
  }
  if (v instanceof XpcEndpoint) return w.u32(XpcType.endpoint);
  if (v instanceof XpcFileTransfer) {
    w.u32(XpcType.fileTransfer);
    w.u64(v.messageId);
    encodeInto(w, v.info, depth + 1);
    return;
  }
  if (v instanceof Uint8Array) {
    w.u32(XpcType.data);
    w.u32(v.length);
    w.bytes(v);
    w.zeros(pad4(v.length));
    return;
  }
  if (depth >= MAX_DEPTH) throw new XpcError('EXPCDEPTH', `XPC containers nested deeper than ${MAX_DEPTH}`);
  if (Array.isArray(v)) {
    w.u32(XpcType.array);
    const lengthAt = w.length;
    w.u32(0);
    w.u32(v.length);
    for (const item of v) encodeInto(w, item, depth + 1);
    w.u32At(lengthAt, w.length - lengthAt - 4);
    return;
  }
  if (isDictionary(v)) {
    w.u32(XpcType.dictionary);
    const lengthAt = w.length;
    w.u32(0);
    w.u32(v.size);
    for (const [key, item] of v) {
      const k = Buffer.from(key, 'utf8');
      if (k.includes(0)) throw new XpcError('EXPCVALUE', 'an XPC dictionary key cannot hold a NUL');
      w.bytes(k);
      w.zeros(1 + pad4(k.length + 1));
      encodeInto(w, item, depth + 1);
    }
    w.u32At(lengthAt, w.length - lengthAt - 4);
    return;
  }
  throw new XpcError('EXPCVALUE', `cannot encode ${Object.prototype.toString.call(v)} as XPC`);
}

/** One XPC object, type code included. */
export function encodeObject(v: XpcValue): Buffer {
  const w = new Writer();
  encodeInto(w, v, 0);
  return w.result();
}

/** Reads objects from a bounded window of a buffer; every read is checked against the end. */
export class ObjectReader {
  constructor(
    private readonly buf: Buffer,
    public pos = 0,
    private readonly end = buf.length,
  ) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      throw new XpcError('EXPCTRUNCATED', `XPC ${what} needs ${n} bytes at offset ${this.pos}, ${this.end - this.pos} left`);
    }
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  private take(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private skipPadding(n: number, what: string): void {
    this.need(pad4(n), what);
    this.pos += pad4(n);
  }
  /** A NUL-terminated dictionary key and its padding. */
  key(): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) throw new XpcError('EXPCTRUNCATED', `XPC dictionary key at offset ${this.pos} has no NUL`);
    const key = this.buf.toString('utf8', this.pos, nul);
    const used = nul + 1 - this.pos;
    this.pos = nul + 1;
    this.skipPadding(used, 'key padding');
    return key;
  }

  object(depth = 0): XpcValue {
    const at = this.pos;
    const type = this.u32('object type');
    switch (type) {
      case XpcType.null:
        return null;
      case XpcType.bool: {
        const b = this.take(4, 'bool');
        return b[0] !== 0;
      }
      case XpcType.int64:
        return new Int64(this.take(8, 'int64').readBigInt64LE(0));
      case XpcType.uint64:
        return new UInt64(this.take(8, 'uint64').readBigUInt64LE(0));
      case XpcType.double:
        return this.take(8, 'double').readDoubleLE(0);
      case XpcType.date:
        return new XpcDate(this.take(8, 'date').readBigInt64LE(0));
      case XpcType.uuid:
        return new Uuid(this.take(16, 'uuid'));
      case XpcType.fd:
        return new XpcFd(this.u32('fd'));
      case XpcType.endpoint:
        return new XpcEndpoint();
      case XpcType.data: {
        const length = this.u32('data length');
        if (length > this.remaining) throw new XpcError('EXPCLENGTH', `XPC data of ${length} bytes at offset ${at}, ${this.remaining} left`);
        const bytes = Buffer.from(this.take(length, 'data'));
        this.skipPadding(length, 'data padding');
        return bytes;
      }
      case XpcType.string: {
        const length = this.u32('string length');
        if (length === 0) throw new XpcError('EXPCLENGTH', `XPC string at offset ${at} has length 0 (the NUL is counted)`);
        if (length > this.remaining) throw new XpcError('EXPCLENGTH', `XPC string of ${length} bytes at offset ${at}, ${this.remaining} left`);
        const bytes = this.take(length, 'string');
        // The first NUL must be the last byte: anything after an inner NUL could not be sent back.
        if (bytes.indexOf(0) !== length - 1) throw new XpcError('EXPCVALUE', `XPC string at offset ${at} is not one NUL-terminated string`);
        this.skipPadding(length, 'string padding');
        return bytes.toString('utf8', 0, length - 1);
      }
      case XpcType.fileTransfer: {
        const id = this.take(8, 'file transfer id').readBigUInt64LE(0);
        return new XpcFileTransfer(id, this.nested(depth));
      }
      case XpcType.array:
      case XpcType.dictionary:
        return this.container(type, at, depth);
      default:
        throw new XpcError('EXPCTYPE', `unknown XPC type 0x${type.toString(16)} at offset ${at}`);
    }
  }

  private nested(depth: number): XpcValue {
    if (depth + 1 > MAX_DEPTH) throw new XpcError('EXPCDEPTH', `XPC containers nested deeper than ${MAX_DEPTH}`);
    return this.object(depth + 1);
  }

  private container(type: number, at: number, depth: number): XpcValue {
    if (depth + 1 > MAX_DEPTH) throw new XpcError('EXPCDEPTH', `XPC containers nested deeper than ${MAX_DEPTH} at offset ${at}`);
    const length = this.u32('container length');
    if (length > this.remaining) {
      throw new XpcError('EXPCLENGTH', `XPC container of ${length} bytes at offset ${at}, ${this.remaining} left`);
    }
    const count = this.u32('container count');
    // Every entry takes at least 4 bytes: a count beyond that cannot be real.
    if (count > this.remaining / 4) {
      throw new XpcError('EXPCLENGTH', `XPC container at offset ${at} claims ${count} entries in ${this.remaining} bytes`);
    }
    if (type === XpcType.array) {
      const items: XpcValue[] = [];
      for (let i = 0; i < count; i++) items.push(this.object(depth + 1));
      return items;
    }
    const entries: XpcDictionary = new Map();
    for (let i = 0; i < count; i++) {
      const key = this.key();
      entries.set(key, this.object(depth + 1));
    }
    return entries;
  }

  /**
   * The top-level dictionary's entries with the offset of each value's type
   * code (used to patch a value in place, e.g. a session UUID).
   */
  dictionaryOffsets(): Map<string, number> {
    const at = this.pos;
    if (this.u32('object type') !== XpcType.dictionary) throw new XpcError('EXPCVALUE', `no dictionary at offset ${at}`);
    this.u32('container length');
    const count = this.u32('container count');
    if (count > this.remaining / 4) throw new XpcError('EXPCLENGTH', `dictionary claims ${count} entries`);
    const offsets = new Map<string, number>();
    for (let i = 0; i < count; i++) {
      const key = this.key();
      offsets.set(key, this.pos);
      this.object(1);
    }
    return offsets;
  }
}

/** One XPC object that must fill `bytes` exactly. */
export function decodeObject(bytes: Buffer): XpcValue {
  const r = new ObjectReader(bytes);
  const v = r.object();
  if (r.remaining !== 0) throw new XpcError('EXPCTRAILING', `${r.remaining} bytes after the XPC object`);
  return v;
}
