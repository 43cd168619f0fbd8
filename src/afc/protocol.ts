// Apple File Conduit wire format (reference §2.3): a 40-byte header of five
// little-endian u64s (magic "CFA6LPAA", entire_length, this_length,
// packet_num, operation), then `this_length - 40` bytes of header data (the
// operation's arguments) and `entire_length - this_length` bytes of payload
// (file bytes for FILE_WRITE, results in DATA replies). Lengths come from the
// peer, so every one is checked against explicit bounds before anything is
// allocated for it.

export const AFC_MAGIC = Buffer.from('CFA6LPAA', 'latin1');
export const AFC_HEADER_SIZE = 40;

/** Header data and non-write payload above this are hostile: real arguments are a path or two. */
export const MAX_HEADER_DATA = 64 * 1024;
/** pymobiledevice3 sends up to 1 GiB of file bytes in one FILE_WRITE packet. */
export const MAX_WRITE_PAYLOAD = 1024 * 1024 * 1024;

export const AfcOpcode = {
  STATUS: 0x01,
  DATA: 0x02,
  READ_DIR: 0x03,
  READ_FILE: 0x04,
  WRITE_FILE: 0x05,
  WRITE_PART: 0x06,
  TRUNCATE: 0x07,
  REMOVE_PATH: 0x08,
  MAKE_DIR: 0x09,
  GET_FILE_INFO: 0x0a,
  GET_DEVINFO: 0x0b,
  WRITE_FILE_ATOM: 0x0c,
  FILE_OPEN: 0x0d,
  FILE_OPEN_RES: 0x0e,
  FILE_READ: 0x0f,
  FILE_WRITE: 0x10,
  FILE_SEEK: 0x11,
  FILE_TELL: 0x12,
  FILE_TELL_RES: 0x13,
  FILE_CLOSE: 0x14,
  FILE_SET_SIZE: 0x15,
  GET_CON_INFO: 0x16,
  SET_CON_OPTIONS: 0x17,
  RENAME_PATH: 0x18,
  SET_FS_BS: 0x19,
  SET_SOCKET_BS: 0x1a,
  FILE_LOCK: 0x1b,
  MAKE_LINK: 0x1c,
  GET_FILE_HASH: 0x1d,
  SET_FILE_MOD_TIME: 0x1e,
  GET_FILE_HASH_RANGE: 0x1f,
  FILE_SET_IMMUTABLE_HINT: 0x20,
  GET_SIZE_OF_PATH_CONTENTS: 0x21,
  REMOVE_PATH_AND_CONTENTS: 0x22,
  DIR_OPEN: 0x23,
  DIR_OPEN_RESULT: 0x24,
  DIR_READ: 0x25,
  DIR_CLOSE: 0x26,
  FILE_READ_OFFSET: 0x27,
  FILE_WRITE_OFFSET: 0x28,
} as const;
export type AfcOpcodeName = keyof typeof AfcOpcode;

export const AfcStatus = {
  SUCCESS: 0,
  UNKNOWN_ERROR: 1,
  OP_HEADER_INVALID: 2,
  NO_RESOURCES: 3,
  READ_ERROR: 4,
  WRITE_ERROR: 5,
  UNKNOWN_PACKET_TYPE: 6,
  INVALID_ARG: 7,
  OBJECT_NOT_FOUND: 8,
  OBJECT_IS_DIR: 9,
  PERM_DENIED: 10,
  SERVICE_NOT_CONNECTED: 11,
  OP_TIMEOUT: 12,
  TOO_MUCH_DATA: 13,
  END_OF_DATA: 14,
  OP_NOT_SUPPORTED: 15,
  OBJECT_EXISTS: 16,
  OBJECT_BUSY: 17,
  NO_SPACE_LEFT: 18,
  OP_WOULD_BLOCK: 19,
  IO_ERROR: 20,
  OP_INTERRUPTED: 21,
  OP_IN_PROGRESS: 22,
  INTERNAL_ERROR: 23,
  MUX_ERROR: 30,
  NO_MEM: 31,
  NOT_ENOUGH_DATA: 32,
  DIR_NOT_EMPTY: 33,
} as const;
export type AfcStatusName = keyof typeof AfcStatus;

/** FILE_OPEN modes, named after the fopen() strings they stand for. */
export const AfcFileMode = {
  RDONLY: 1, // r
  RW: 2, // r+ (creates)
  WRONLY: 3, // w (creates, truncates)
  WR: 4, // w+ (creates, truncates)
  APPEND: 5, // a
  RDAPPEND: 6, // a+
} as const;
export type AfcFileModeName = keyof typeof AfcFileMode;

export const AfcSeekWhence = { SET: 0, CUR: 1, END: 2 } as const;

/** What a mode lets a handle do, as open(2) flags would. */
export interface AfcOpenFlags {
  read: boolean;
  write: boolean;
  create: boolean;
  truncate: boolean;
  append: boolean;
}

export function openFlags(mode: number): AfcOpenFlags | undefined {
  switch (mode) {
    case AfcFileMode.RDONLY:
      return { read: true, write: false, create: false, truncate: false, append: false };
    case AfcFileMode.RW:
      return { read: true, write: true, create: true, truncate: false, append: false };
    case AfcFileMode.WRONLY:
      return { read: false, write: true, create: true, truncate: true, append: false };
    case AfcFileMode.WR:
      return { read: true, write: true, create: true, truncate: true, append: false };
    case AfcFileMode.APPEND:
      return { read: false, write: true, create: true, truncate: false, append: true };
    case AfcFileMode.RDAPPEND:
      return { read: true, write: true, create: true, truncate: false, append: true };
    default:
      return undefined;
  }
}

const statusNames = new Map<number, string>(Object.entries(AfcStatus).map(([name, code]) => [code, name]));
const opcodeNames = new Map<number, string>(Object.entries(AfcOpcode).map(([name, code]) => [code, name]));

export function afcStatusName(code: number): string {
  return statusNames.get(code) ?? `AFC_STATUS_${code}`;
}

export function afcOpcodeName(op: number): string {
  return opcodeNames.get(op) ?? `AFC_OP_0x${op.toString(16)}`;
}

/** Protocol failures that are not a device status: the connection is no longer usable. */
export type AfcProtocolErrorCode =
  | 'ERR_AFC_BAD_MAGIC'
  | 'ERR_AFC_BAD_LENGTH'
  | 'ERR_AFC_TOO_LARGE'
  | 'ERR_AFC_PACKET_NUM'
  | 'ERR_AFC_UNEXPECTED_REPLY'
  | 'ERR_AFC_CLOSED';

/**
 * `code` is the AfcError status number when the device answered with one,
 * or a string when the bytes themselves were wrong (then the connection is
 * closed).
 */
export class AfcError extends Error {
  readonly code: number | AfcProtocolErrorCode;

  constructor(code: number | AfcProtocolErrorCode, message?: string) {
    super(message ?? (typeof code === 'number' ? afcStatusName(code) : code));
    this.name = 'AfcError';
    this.code = code;
  }

  /** True when the device answered with this status. */
  is(status: AfcStatusName): boolean {
    return this.code === AfcStatus[status];
  }
}

export interface AfcHeader {
  entireLength: number;
  thisLength: number;
  /** Any u64: replies echo it exactly, so it is not squeezed into a double. */
  packetNum: bigint;
  operation: number;
}

/** Bounds a reader puts on what follows a header, per operation. */
export interface AfcLimits {
  /** Largest header data + payload (entire_length - 40) accepted for this operation. */
  maxBody: (operation: number) => number;
}

/** Reads a u64 that must fit a JS number; larger values are reported as Infinity so bounds reject them. */
function readSafeU64(buf: Buffer, offset: number): number {
  const v = buf.readBigUInt64LE(offset);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
}

/**
 * Parses and validates the 40-byte header. Throws a string-coded AfcError
 * on bad magic, inconsistent lengths, or lengths beyond `limits`. Without
 * limits a caller must not allocate from the lengths it returns.
 */
export function decodeHeader(head: Buffer, limits?: AfcLimits): AfcHeader {
  if (head.length < AFC_HEADER_SIZE) throw new AfcError('ERR_AFC_BAD_LENGTH', `AFC header of ${head.length} bytes`);
  if (!head.subarray(0, 8).equals(AFC_MAGIC)) {
    throw new AfcError('ERR_AFC_BAD_MAGIC', `bad AFC magic ${head.subarray(0, 8).toString('hex')}`);
  }
  const entireLength = readSafeU64(head, 8);
  const thisLength = readSafeU64(head, 16);
  const packetNum = head.readBigUInt64LE(24);
  const operation = readSafeU64(head, 32);
  if (thisLength < AFC_HEADER_SIZE || entireLength < thisLength) {
    throw new AfcError('ERR_AFC_BAD_LENGTH', `AFC lengths entire=${entireLength} this=${thisLength}`);
  }
  const header = { entireLength, thisLength, packetNum, operation };
  // Lengths past 2^53 were read as Infinity, so any finite limit rejects them.
  const max = limits?.maxBody(operation);
  if (max !== undefined && entireLength - AFC_HEADER_SIZE > max) {
    throw new AfcError('ERR_AFC_TOO_LARGE', `AFC ${afcOpcodeName(operation)} of ${entireLength} bytes (limit ${AFC_HEADER_SIZE + max})`);
  }
  return header;
}

export function headerDataLength(h: AfcHeader): number {
  return h.thisLength - AFC_HEADER_SIZE;
}

export function payloadLength(h: AfcHeader): number {
  return h.entireLength - h.thisLength;
}

export function encodeHeader(h: Omit<AfcHeader, 'packetNum'> & { packetNum: number | bigint }): Buffer {
  const out = Buffer.alloc(AFC_HEADER_SIZE);
  AFC_MAGIC.copy(out, 0);
  out.writeBigUInt64LE(BigInt(h.entireLength), 8);
  out.writeBigUInt64LE(BigInt(h.thisLength), 16);
  out.writeBigUInt64LE(BigInt(h.packetNum), 24);
  out.writeBigUInt64LE(BigInt(h.operation), 32);
  return out;
}

/**
 * One packet as buffers to write in order: the header with its header data,
 * then the payload untouched (it may be megabytes; no copy).
 */
export function encodePacket(operation: number, packetNum: number | bigint, headerData: Buffer = EMPTY, payload: Buffer = EMPTY): Buffer[] {
  const thisLength = AFC_HEADER_SIZE + headerData.length;
  const head = encodeHeader({ entireLength: thisLength + payload.length, thisLength, packetNum, operation });
  const first = headerData.length ? Buffer.concat([head, headerData]) : head;
  return payload.length ? [first, payload] : [first];
}

const EMPTY = Buffer.alloc(0);

export function u64(...values: Array<number | bigint>): Buffer {
  const out = Buffer.alloc(8 * values.length);
  values.forEach((v, i) => out.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), 8 * i));
  return out;
}

/** A path argument: UTF-8 and a NUL. */
export function encodePath(path: string): Buffer {
  return Buffer.from(`${path}\0`, 'utf8');
}

/** The NUL-terminated strings in `buf`, in order (a missing final NUL is tolerated). */
export function decodeStrings(buf: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  while (start < buf.length) {
    let end = buf.indexOf(0, start);
    if (end < 0) end = buf.length;
    out.push(buf.toString('utf8', start, end));
    start = end + 1;
  }
  return out;
}

export function encodeStrings(items: readonly string[]): Buffer {
  return Buffer.from(items.map((s) => `${s}\0`).join(''), 'utf8');
}

/** GET_FILE_INFO / GET_DEVINFO bodies: key NUL value NUL ... */
export function decodeKeyValues(buf: Buffer): Record<string, string> {
  const items = decodeStrings(buf);
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < items.length; i += 2) out[items[i]!] = items[i + 1]!;
  return out;
}

export function encodeKeyValues(dict: Record<string, string | number | bigint>): Buffer {
  return encodeStrings(Object.entries(dict).flatMap(([k, v]) => [k, String(v)]));
}
