// The JavaScript shapes of XPC objects (reference §3.1.3). Integers are
// typed explicitly (Int64 / UInt64 hold a bigint) and dictionaries are Maps,
// so that decode(encode(x)) is x and encode(decode(bytes)) is bytes.
import { randomBytes } from 'node:crypto';

import { XpcError } from './errors.js';

export class Int64 {
  constructor(readonly value: bigint) {
    if (value < -(1n << 63n) || value >= 1n << 63n) throw new XpcError('EXPCVALUE', `${value} does not fit an int64`);
  }
}

export class UInt64 {
  constructor(readonly value: bigint) {
    if (value < 0n || value >= 1n << 64n) throw new XpcError('EXPCVALUE', `${value} does not fit a uint64`);
  }
}

export const int64 = (v: number | bigint): Int64 => new Int64(BigInt(v));
export const uint64 = (v: number | bigint): UInt64 => new UInt64(BigInt(v));

/** An XPC date: nanoseconds since 1970-01-01 (signed 64-bit on the wire). */
export class XpcDate {
  constructor(readonly nanoseconds: bigint) {}
  static fromDate(d: Date): XpcDate {
    return new XpcDate(BigInt(d.getTime()) * 1_000_000n);
  }
  toDate(): Date {
    return new Date(Number(this.nanoseconds / 1_000_000n));
  }
}

export class Uuid {
  readonly bytes: Buffer;
  constructor(bytes: Uint8Array) {
    if (bytes.length !== 16) throw new XpcError('EXPCVALUE', `a UUID is 16 bytes, not ${bytes.length}`);
    this.bytes = Buffer.from(bytes);
  }
  /** A random (version 4) UUID; never all zeros. */
  static random(): Uuid {
    const b = randomBytes(16);
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    return new Uuid(b);
  }
  static parse(text: string): Uuid {
    const hex = text.replace(/-/g, '');
    if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new XpcError('EXPCVALUE', `'${text}' is not a UUID`);
    return new Uuid(Buffer.from(hex, 'hex'));
  }
  isZero(): boolean {
    return this.bytes.every((b) => b === 0);
  }
  toString(): string {
    const h = this.bytes.toString('hex').toUpperCase();
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}

/** A file descriptor placeholder: the u32 is meaningless off the machine that sent it. */
export class XpcFd {
  constructor(readonly raw: number) {}
}

/** An endpoint (or other port-carrying object) placeholder: no body crosses the wire. */
export class XpcEndpoint {}

/** A file-transfer announcement: a transfer id and the object describing it ({s: size}). */
export class XpcFileTransfer {
  constructor(
    readonly messageId: bigint,
    readonly info: XpcValue,
  ) {}
}

export type XpcDictionary = Map<string, XpcValue>;

export type XpcValue =
  | null
  | boolean
  | Int64
  | UInt64
  | number
  | XpcDate
  | Uint8Array
  | string
  | Uuid
  | XpcFd
  | XpcEndpoint
  | XpcFileTransfer
  | XpcValue[]
  | XpcDictionary;

/** A dictionary from an object literal (keys in insertion order). */
export function dict(entries: Record<string, XpcValue> = {}): XpcDictionary {
  return new Map(Object.entries(entries));
}

export function isDictionary(v: XpcValue | undefined): v is XpcDictionary {
  return v instanceof Map;
}
