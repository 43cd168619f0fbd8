// The host side of com.apple.afc over any byte stream (a usbmux connection to
// the port StartService returned, or a direct socket to the simulator).
// Requests go out one at a time; the next waits until the previous reply is
// in, and each reply must echo its request's packet_num. A status other than
// SUCCESS rejects that call only; broken framing closes the connection and
// rejects everything after it.
import type { Duplex, Readable } from 'node:stream';

import { ByteReader, writeParts } from './byte-reader.js';
import {
  AFC_HEADER_SIZE,
  AfcError,
  AfcFileMode,
  AfcOpcode,
  AfcSeekWhence,
  AfcStatus,
  afcOpcodeName,
  afcStatusName,
  decodeHeader,
  decodeKeyValues,
  decodeStrings,
  encodePacket,
  encodePath,
  MAX_HEADER_DATA,
  u64,
  type AfcFileModeName,
} from './protocol.js';

/** Transfer size of upload() and download(): what libimobiledevice's afcclient uses. */
export const AFC_CHUNK = 1024 * 1024;

export interface AfcClientOptions {
  /** Largest reply body accepted for anything but FILE_READ (directory listings, file info). Default 16 MiB. */
  maxReplyBytes?: number;
  /** Largest FILE_READ a caller may ask for. Default 64 MiB. */
  maxReadBytes?: number;
  /** The first packet_num (pymobiledevice3 and appium start at 0, libimobiledevice at 1). Default 0. */
  firstPacketNum?: number;
}

/** fopen() spellings of the FILE_OPEN modes. */
const FOPEN_MODES: Record<string, number> = {
  r: AfcFileMode.RDONLY,
  'r+': AfcFileMode.RW,
  w: AfcFileMode.WRONLY,
  'w+': AfcFileMode.WR,
  a: AfcFileMode.APPEND,
  'a+': AfcFileMode.RDAPPEND,
};

export type AfcOpenMode = number | AfcFileModeName | 'r' | 'r+' | 'w' | 'w+' | 'a' | 'a+';

export interface AfcFileInfo {
  /** st_ifmt as the device wrote it: S_IFREG, S_IFDIR, S_IFLNK, ... */
  type: string;
  size: number;
  blocks: number;
  nlink: number;
  mtimeNs: bigint;
  birthtimeNs: bigint;
  linkTarget?: string;
  /** Every key the device sent. */
  raw: Record<string, string>;
}

export interface AfcDeviceInfo {
  model: string;
  totalBytes: number;
  freeBytes: number;
  blockSize: number;
  raw: Record<string, string>;
}

interface Reply {
  operation: number;
  body: Buffer;
}

export class AfcClient {
  private readonly reader: ByteReader;
  private packetNum: number;
  private queue: Promise<unknown> = Promise.resolve();
  private broken: Error | undefined;
  private readonly maxReplyBytes: number;
  private readonly maxReadBytes: number;

  constructor(
    readonly socket: Duplex,
    options: AfcClientOptions = {},
  ) {
    this.reader = new ByteReader(socket);
    this.packetNum = options.firstPacketNum ?? 0;
    this.maxReplyBytes = options.maxReplyBytes ?? 16 * 1024 * 1024;
    this.maxReadBytes = options.maxReadBytes ?? 64 * 1024 * 1024;
  }

  async getDeviceInfo(): Promise<AfcDeviceInfo> {
    const raw = decodeKeyValues(await this.call(AfcOpcode.GET_DEVINFO, Buffer.alloc(0), AfcOpcode.DATA));
    return {
      model: raw.Model ?? '',
      totalBytes: Number(raw.FSTotalBytes ?? 0),
      freeBytes: Number(raw.FSFreeBytes ?? 0),
      blockSize: Number(raw.FSBlockSize ?? 0),
      raw,
    };
  }

  /** Entry names, without "." and "..". */
  async readDirectory(path: string): Promise<string[]> {
    const names = decodeStrings(await this.call(AfcOpcode.READ_DIR, encodePath(path), AfcOpcode.DATA));
    return names.filter((n) => n !== '.' && n !== '..');
  }

  async getFileInfo(path: string): Promise<AfcFileInfo> {
    const raw = decodeKeyValues(await this.call(AfcOpcode.GET_FILE_INFO, encodePath(path), AfcOpcode.DATA));
    const info: AfcFileInfo = {
      type: raw.st_ifmt ?? '',
      size: Number(raw.st_size ?? 0),
      blocks: Number(raw.st_blocks ?? 0),
      nlink: Number(raw.st_nlink ?? 0),
      mtimeNs: BigInt(raw.st_mtime ?? 0),
      birthtimeNs: BigInt(raw.st_birthtime ?? 0),
      raw,
    };
    if (raw.LinkTarget !== undefined) info.linkTarget = raw.LinkTarget;
    return info;
  }

  /** False when the device says the path is missing (READ_ERROR from GET_FILE_INFO, as phones answer, or OBJECT_NOT_FOUND). */
  async exists(path: string): Promise<boolean> {
    try {
      await this.getFileInfo(path);
      return true;
    } catch (err) {
      if (err instanceof AfcError && (err.is('READ_ERROR') || err.is('OBJECT_NOT_FOUND'))) return false;
      throw err;
    }
  }

  /** Creates the directory and its missing parents. */
  async makeDirectory(path: string): Promise<void> {
    await this.call(AfcOpcode.MAKE_DIR, encodePath(path), AfcOpcode.STATUS);
  }

  /** A file or an empty directory; with `recursive`, a directory and everything in it. */
  async removePath(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    const op = options.recursive ? AfcOpcode.REMOVE_PATH_AND_CONTENTS : AfcOpcode.REMOVE_PATH;
    await this.call(op, encodePath(path), AfcOpcode.STATUS);
  }

  async renamePath(from: string, to: string): Promise<void> {
    await this.call(AfcOpcode.RENAME_PATH, Buffer.concat([encodePath(from), encodePath(to)]), AfcOpcode.STATUS);
  }

  /** Opens a file; resolves with its handle. */
  async open(path: string, mode: AfcOpenMode = 'r'): Promise<number> {
    const code = typeof mode === 'number' ? mode : (FOPEN_MODES[mode] ?? AfcFileMode[mode as AfcFileModeName]);
    if (code === undefined) throw new TypeError(`unknown AFC open mode ${String(mode)}`);
    const body = await this.call(AfcOpcode.FILE_OPEN, Buffer.concat([u64(code), encodePath(path)]), AfcOpcode.FILE_OPEN_RES);
    return readU64(body, 'FILE_OPEN_RES');
  }

  /** Up to `length` bytes from the handle's position; an empty buffer at the end of the file. */
  async read(handle: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(length) || length < 0 || length > this.maxReadBytes) {
      throw new RangeError(`AFC read of ${length} bytes (limit ${this.maxReadBytes})`);
    }
    return this.call(AfcOpcode.FILE_READ, u64(handle, length), AfcOpcode.DATA, length + MAX_HEADER_DATA);
  }

  /** Writes all of `data` at the handle's position, in one packet. */
  async write(handle: number, data: Buffer): Promise<void> {
    await this.call(AfcOpcode.FILE_WRITE, u64(handle), AfcOpcode.STATUS, undefined, data);
  }

  async seek(handle: number, offset: number, whence: keyof typeof AfcSeekWhence = 'SET'): Promise<void> {
    const args = Buffer.alloc(24);
    args.writeBigUInt64LE(BigInt(handle), 0);
    args.writeBigUInt64LE(BigInt(AfcSeekWhence[whence]), 8);
    args.writeBigInt64LE(BigInt(offset), 16);
    await this.call(AfcOpcode.FILE_SEEK, args, AfcOpcode.STATUS);
  }

  async tell(handle: number): Promise<number> {
    return readU64(await this.call(AfcOpcode.FILE_TELL, u64(handle), AfcOpcode.FILE_TELL_RES), 'FILE_TELL_RES');
  }

  async setFileSize(handle: number, size: number): Promise<void> {
    await this.call(AfcOpcode.FILE_SET_SIZE, u64(handle, size), AfcOpcode.STATUS);
  }

  async close(handle: number): Promise<void> {
    await this.call(AfcOpcode.FILE_CLOSE, u64(handle), AfcOpcode.STATUS);
  }

  /** Writes a whole file (created or truncated) in AFC_CHUNK pieces; resolves with the byte count. */
  async upload(path: string, source: Buffer | Readable | AsyncIterable<Buffer>): Promise<number> {
    const handle = await this.open(path, 'w');
    let written = 0;
    try {
      if (Buffer.isBuffer(source)) {
        for (let at = 0; at < source.length; at += AFC_CHUNK) {
          const chunk = source.subarray(at, at + AFC_CHUNK);
          await this.write(handle, chunk);
          written += chunk.length;
        }
      } else {
        // Coalesce a stream's small chunks so each packet carries a full AFC_CHUNK.
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        const flush = async (all: boolean) => {
          while (pendingBytes >= AFC_CHUNK || (all && pendingBytes > 0)) {
            const joined = Buffer.concat(pending, pendingBytes);
            const chunk = joined.subarray(0, Math.min(AFC_CHUNK, joined.length));
            const rest = joined.subarray(chunk.length);
            await this.write(handle, chunk);
            written += chunk.length;
            pending = rest.length ? [rest] : [];
            pendingBytes = rest.length;
          }
        };
        for await (const piece of source as AsyncIterable<Buffer | string>) {
          const buf = typeof piece === 'string' ? Buffer.from(piece) : piece;
          pending.push(buf);
          pendingBytes += buf.length;
          await flush(false);
        }
        await flush(true);
      }
    } finally {
      await this.closeQuietly(handle);
    }
    return written;
  }

  /** Reads a whole file in AFC_CHUNK requests, until the device answers with no bytes. */
  async download(path: string): Promise<Buffer> {
    const handle = await this.open(path, 'r');
    const parts: Buffer[] = [];
    try {
      for (;;) {
        const chunk = await this.read(handle, AFC_CHUNK);
        if (chunk.length === 0) break;
        parts.push(chunk);
      }
    } finally {
      await this.closeQuietly(handle);
    }
    return Buffer.concat(parts);
  }

  /** Ends the connection. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private async closeQuietly(handle: number): Promise<void> {
    if (this.broken) return;
    await this.close(handle).catch(() => {});
  }

  /**
   * One request and its reply, queued behind earlier calls. Resolves with the
   * reply body when it is `expect` (or SUCCESS for STATUS); rejects with
   * the device's status otherwise.
   */
  private call(op: number, args: Buffer, expect: number, maxBody = this.maxReplyBytes, payload?: Buffer): Promise<Buffer> {
    const result = this.queue.then(() => this.roundTrip(op, args, payload, expect, maxBody));
    this.queue = result.catch(() => {});
    return result;
  }

  private async roundTrip(op: number, args: Buffer, payload: Buffer | undefined, expect: number, maxBody: number): Promise<Buffer> {
    if (this.broken) throw this.broken;
    const packetNum = this.packetNum++;
    try {
      await writeParts(this.socket, encodePacket(op, packetNum, args, payload));
      const head = await this.reader.readExactly(AFC_HEADER_SIZE);
      if (!head) throw new AfcError('ERR_AFC_CLOSED', 'the device closed the AFC connection');
      const header = decodeHeader(head, { maxBody: () => maxBody });
      // Header data and payload together: STATUS and handles come in the
      // former, DATA in the latter, and older devices are not so tidy.
      const body = await this.reader.readExactly(header.entireLength - AFC_HEADER_SIZE);
      if (!body) throw new AfcError('ERR_AFC_CLOSED', 'the device closed the AFC connection');
      if (header.packetNum !== BigInt(packetNum)) {
        throw new AfcError('ERR_AFC_PACKET_NUM', `reply packet_num ${header.packetNum}, expected ${packetNum}`);
      }
      return expected({ operation: header.operation, body }, op, expect);
    } catch (err) {
      // A device status leaves the connection in step; anything else does not.
      if (err instanceof AfcError && typeof err.code === 'number') throw err;
      this.broken = err instanceof Error ? err : new Error(String(err));
      this.socket.destroy();
      throw err;
    }
  }
}

function expected(reply: Reply, op: number, expect: number): Buffer {
  if (reply.operation === AfcOpcode.STATUS) {
    const code = readU64(reply.body, 'STATUS');
    if (code !== AfcStatus.SUCCESS) throw new AfcError(code, `${afcOpcodeName(op)}: ${afcStatusName(code)}`);
    if (expect === AfcOpcode.STATUS) return reply.body;
  } else if (reply.operation === expect) {
    return reply.body;
  }
  throw new AfcError('ERR_AFC_UNEXPECTED_REPLY', `${afcOpcodeName(op)} answered with ${afcOpcodeName(reply.operation)}`);
}

function readU64(body: Buffer, what: string): number {
  if (body.length < 8) throw new AfcError('ERR_AFC_UNEXPECTED_REPLY', `${what} without its u64`);
  const v = body.readBigUInt64LE(0);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new AfcError('ERR_AFC_UNEXPECTED_REPLY', `${what} value ${v} out of range`);
  return Number(v);
}
