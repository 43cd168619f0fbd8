// The usbmuxd client protocol on the wire: a 16-byte little-endian header,
// then a binary (version 0) or plist (version 1) body. Shared by the server
// and the client library, so both ends agree byte for byte.

export const HEADER_SIZE = 16;
/** Largest request the daemon accepts from a client (usbmuxd's CMD_BUF_SIZE). */
export const MAX_MESSAGE_LENGTH = 0x10000;
/**
 * Largest reply a client accepts from its daemon. Requests are small, but a
 * ListDevices reply grows with the phones listed: about 400 bytes each, so
 * 256 remote phones already pass 64 KiB. libusbmuxd reads replies of any
 * length; 16 MiB is some 40,000 phones and still bounds what a daemon that
 * lost its framing can make us hold.
 */
export const MAX_REPLY_LENGTH = 16 * 0x100000;

export const ProtocolVersion = { Binary: 0, Plist: 1 } as const;

export const MessageType = {
  Result: 1,
  Connect: 2,
  Listen: 3,
  DeviceAdd: 4,
  DeviceRemove: 5,
  DevicePaired: 6,
  Plist: 8,
} as const;

/** Result numbers as usbmuxd sends them (pair-record commands reuse errno values). */
export const Result = {
  OK: 0,
  BADCOMMAND: 1,
  BADDEV: 2,
  CONNREFUSED: 3,
  BADVERSION: 6,
  ENOENT: 2,
  EINVAL: 22,
} as const;

export interface Header {
  length: number;
  version: number;
  message: number;
  tag: number;
}

export interface Message {
  header: Header;
  body: Buffer;
}

export class ProtocolError extends Error {
  readonly code: string;
  constructor(message: string, code = 'ERR_USBMUX_PROTOCOL') {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

export function encodeHeader(h: Header): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.writeUInt32LE(h.length, 0);
  b.writeUInt32LE(h.version, 4);
  b.writeUInt32LE(h.message, 8);
  b.writeUInt32LE(h.tag, 12);
  return b;
}

export function decodeHeader(b: Buffer): Header {
  return {
    length: b.readUInt32LE(0),
    version: b.readUInt32LE(4),
    message: b.readUInt32LE(8),
    tag: b.readUInt32LE(12),
  };
}

export function encodeMessage(version: number, message: number, tag: number, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([encodeHeader({ length: HEADER_SIZE + body.length, version, message, tag }), body]);
}

/**
 * Cuts a byte stream into messages, one at a time, so that a caller can stop
 * after a Connect and take the bytes behind it raw. A length outside
 * 16..maxLength is not recoverable (the stream has lost its framing).
 *
 * Chunks are kept as a list and only the bytes of one message are ever
 * copied (when it straddles chunks), so the cost is linear in the bytes
 * read however many requests a client piles up. Re-concatenating the whole
 * buffer on every chunk was quadratic.
 */
export class MessageFramer {
  /** @param maxLength the largest message this end accepts, header included. */
  constructor(private readonly maxLength = MAX_MESSAGE_LENGTH) {}

  private chunks: Buffer[] = [];
  /** Offset of the first unread byte in chunks[0]. */
  private offset = 0;
  private total = 0;

  /** Bytes held: received and not yet returned as a message. */
  get bufferedBytes(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (!chunk.length) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** The next whole message, or null until more bytes arrive. */
  next(): Message | null {
    if (this.total < HEADER_SIZE) return null;
    const header = decodeHeader(this.peek(HEADER_SIZE));
    if (header.length < HEADER_SIZE || header.length > this.maxLength) {
      throw new ProtocolError(
        `message length ${header.length} is outside ${HEADER_SIZE}..${this.maxLength}`,
        'ERR_USBMUX_BAD_LENGTH',
      );
    }
    if (this.total < header.length) return null;
    const bytes = this.take(header.length);
    return { header, body: bytes.subarray(HEADER_SIZE) };
  }

  /** Bytes received after the last whole message. */
  takeRemainder(): Buffer {
    return this.take(this.total);
  }

  /** The first n buffered bytes, without consuming them (n <= total). */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    return this.gather(n, false);
  }

  /** Consumes and returns the first n buffered bytes (n <= total). */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      this.total -= n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return out;
    }
    return this.gather(n, true);
  }

  // Copies n bytes that straddle chunks into one buffer: at most one
  // message (64 KiB) per call, so a body byte is copied at most once (a
  // header's 16 bytes twice, by peek and then take).
  private gather(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let index = 0;
    let offset = this.offset;
    while (filled < n) {
      const chunk = this.chunks[index]!;
      const count = Math.min(n - filled, chunk.length - offset);
      chunk.copy(out, filled, offset, offset + count);
      filled += count;
      offset += count;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
    }
    if (consume) {
      this.chunks.splice(0, index);
      this.offset = offset;
      this.total -= n;
    }
    return out;
  }
}

// ---- binary (version 0) bodies ----

/** The 268-byte device record of DEVICE_ADD. */
export const DEVICE_RECORD_SIZE = 268;

export interface BinaryDeviceRecord {
  deviceId: number;
  productId: number;
  serial: string;
  location: number;
}

export function encodeResultBinary(tag: number, result: number): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt32LE(result, 0);
  return encodeMessage(ProtocolVersion.Binary, MessageType.Result, tag, body);
}

export function encodeDeviceAdd(r: BinaryDeviceRecord): Buffer {
  const body = Buffer.alloc(DEVICE_RECORD_SIZE);
  body.writeUInt32LE(r.deviceId, 0);
  body.writeUInt16LE(r.productId, 4);
  body.write(r.serial.slice(0, 255), 6, 'latin1');  // NUL-terminated, at most 255 characters
  body.writeUInt32LE(r.location >>> 0, 264);
  return encodeMessage(ProtocolVersion.Binary, MessageType.DeviceAdd, 0, body);
}

export function decodeDeviceAdd(body: Buffer): BinaryDeviceRecord {
  if (body.length < DEVICE_RECORD_SIZE) throw new ProtocolError('short DEVICE_ADD record');
  const serialEnd = body.indexOf(0, 6);
  return {
    deviceId: body.readUInt32LE(0),
    productId: body.readUInt16LE(4),
    serial: body.toString('latin1', 6, serialEnd >= 6 && serialEnd < 262 ? serialEnd : 262),
    location: body.readUInt32LE(264),
  };
}

export function encodeDeviceId(message: typeof MessageType.DeviceRemove | typeof MessageType.DevicePaired, deviceId: number): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt32LE(deviceId, 0);
  return encodeMessage(ProtocolVersion.Binary, message, 0, body);
}

/** Binary Connect: u32 device id, u16 port in network order, u16 reserved. */
export function encodeConnectBinary(tag: number, deviceId: number, port: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32LE(deviceId, 0);
  body.writeUInt16BE(port, 4);
  return encodeMessage(ProtocolVersion.Binary, MessageType.Connect, tag, body);
}

export function decodeConnectBinary(body: Buffer): { deviceId: number; port: number } {
  if (body.length < 6) throw new ProtocolError('short binary Connect body');
  return { deviceId: body.readUInt32LE(0), port: body.readUInt16BE(4) };
}

/** The plist PortNumber is htons(port), read as a host (little-endian) integer. */
export function swapPort(port: number): number {
  return ((port & 0xff) << 8) | ((port >> 8) & 0xff);
}

/** ConnectionSpeed in bits/s from a libusb_speed value. */
export function connectionSpeed(libusbSpeed: number): number {
  switch (libusbSpeed) {
    case 1: return 1_500_000;
    case 2: return 12_000_000;
    case 4: return 5_000_000_000;
    case 5: return 10_000_000_000;
    default: return 480_000_000;
  }
}
