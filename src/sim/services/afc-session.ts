// One AFC connection on the simulated phone: read a packet, answer it, in
// order. Replies follow what captured phones send (reference §2.3.1 and
// quirk 6): STATUS, FILE_OPEN_RES and FILE_TELL_RES carry their u64 in
// header data (this_length 48), DATA carries its bytes as payload
// (this_length 40), and every reply echoes the request's packet_num.
// FILE_WRITE bodies are streamed into the store piece by piece, never held
// whole. A packet whose framing is wrong closes this connection only; a bad
// argument is a STATUS error and the connection goes on.
import type { Socket } from 'node:net';

import { ByteReader, writeParts } from '../../afc/byte-reader.js';
import {
  AFC_HEADER_SIZE,
  AfcError,
  AfcOpcode,
  AfcSeekWhence,
  AfcStatus,
  decodeHeader,
  decodeStrings,
  encodeKeyValues,
  encodePacket,
  encodeStrings,
  MAX_HEADER_DATA,
  openFlags,
  u64,
  type AfcHeader,
  type AfcLimits,
  type AfcOpenFlags,
} from '../../afc/protocol.js';
import type { AfcStore, AfcStoreFile } from './afc-store.js';

export interface AfcSessionLimits {
  /** Largest FILE_READ answer; bigger requests get this much (a short read). */
  maxReadBytes: number;
  /** Largest file data in one FILE_WRITE packet. */
  maxWritePacket: number;
  /** Open handles per connection before FILE_OPEN answers NO_RESOURCES. */
  maxOpenFiles: number;
  /** What GET_DEVINFO reports as Model. */
  model: string;
}

/** Positions stay well inside exact double arithmetic. */
const MAX_OFFSET = 2 ** 48;
/** Bytes handed to the store per call while a FILE_WRITE streams in. */
const WRITE_PIECE = 1024 * 1024;

interface OpenFile {
  file: AfcStoreFile;
  flags: AfcOpenFlags;
  position: number;
}

type Reply = Buffer[];

export class AfcSession {
  private readonly files = new Map<number, OpenFile>();
  private nextHandle = 1;
  private readonly packetLimits: AfcLimits;

  constructor(
    private readonly socket: Socket,
    private readonly store: AfcStore,
    private readonly limits: AfcSessionLimits,
  ) {
    this.packetLimits = {
      maxBody: (op) => (op === AfcOpcode.FILE_WRITE ? 8 + limits.maxWritePacket : MAX_HEADER_DATA),
    };
  }

  /** Serves packets until the peer hangs up or breaks framing; then closes the socket and the open files. */
  async run(): Promise<void> {
    const reader = new ByteReader(this.socket);
    try {
      for (;;) {
        const head = await reader.readExactly(AFC_HEADER_SIZE);
        if (!head) {
          // The host hung up between packets: let the last reply drain, then close.
          this.socket.end();
          break;
        }
        const header = decodeHeader(head, this.packetLimits);
        const body = header.entireLength - AFC_HEADER_SIZE;
        let reply: Reply;
        if (header.operation === AfcOpcode.FILE_WRITE) {
          reply = await this.fileWrite(header, body, reader);
        } else {
          // Arguments belong in header data, but the payload is read as
          // more of them: libimobiledevice and pymobiledevice3 do not
          // distinguish the two either.
          const args = await required(reader, body);
          reply = await this.answer(header, args);
        }
        await writeParts(this.socket, reply);
      }
    } catch {
      // Broken framing or a closed socket: nothing more to say on it.
      this.socket.destroy();
    } finally {
      await this.closeAll();
    }
  }

  private async answer(header: AfcHeader, args: Buffer): Promise<Reply> {
    const n = header.packetNum;
    try {
      return await this.dispatch(header.operation, args, n);
    } catch (err) {
      if (err instanceof AfcError && typeof err.code === 'number') return status(n, err.code);
      return status(n, AfcStatus.INTERNAL_ERROR);
    }
  }

  private async dispatch(op: number, args: Buffer, n: bigint): Promise<Reply> {
    switch (op) {
      case AfcOpcode.GET_DEVINFO: {
        const fs = await this.store.fsInfo();
        return data(n, encodeKeyValues({ Model: this.limits.model, FSTotalBytes: fs.totalBytes, FSFreeBytes: fs.freeBytes, FSBlockSize: fs.blockSize }));
      }
      case AfcOpcode.READ_DIR:
        return data(n, encodeStrings(['.', '..', ...(await this.store.list(pathArg(args, 0)))]));
      case AfcOpcode.GET_FILE_INFO:
        return data(n, await this.fileInfo(pathArg(args, 0)));
      case AfcOpcode.MAKE_DIR:
        await this.store.makeDirectory(pathArg(args, 0));
        return status(n, AfcStatus.SUCCESS);
      case AfcOpcode.REMOVE_PATH:
      case AfcOpcode.REMOVE_PATH_AND_CONTENTS:
        await this.store.remove(pathArg(args, 0), op === AfcOpcode.REMOVE_PATH_AND_CONTENTS);
        return status(n, AfcStatus.SUCCESS);
      case AfcOpcode.RENAME_PATH: {
        const [from, to] = decodeStrings(args);
        if (!from || !to) throw new AfcError(AfcStatus.INVALID_ARG, 'RENAME_PATH needs two paths');
        await this.store.rename(from, to);
        return status(n, AfcStatus.SUCCESS);
      }
      case AfcOpcode.TRUNCATE: {
        const file = await this.store.open(pathArg(args, 8), { read: false, write: true, create: false, truncate: false, append: false });
        try {
          await file.truncate(offsetArg(args, 0));
        } finally {
          await file.close();
        }
        return status(n, AfcStatus.SUCCESS);
      }
      case AfcOpcode.FILE_OPEN:
        return handleReply(n, AfcOpcode.FILE_OPEN_RES, await this.open(numberArg(args, 0), pathArg(args, 8)));
      case AfcOpcode.FILE_READ:
        return data(n, await this.read(this.handle(args), numberArg(args, 8)));
      case AfcOpcode.FILE_SEEK:
        await this.seek(this.handle(args), numberArg(args, 8), signedArg(args, 16));
        return status(n, AfcStatus.SUCCESS);
      case AfcOpcode.FILE_TELL:
        return handleReply(n, AfcOpcode.FILE_TELL_RES, this.handle(args).position);
      case AfcOpcode.FILE_SET_SIZE: {
        const open = this.handle(args);
        if (!open.flags.write) throw new AfcError(AfcStatus.PERM_DENIED, 'handle not open for writing');
        await open.file.truncate(offsetArg(args, 8));
        return status(n, AfcStatus.SUCCESS);
      }
      case AfcOpcode.FILE_CLOSE: {
        const open = this.handle(args);
        this.files.delete(numberArg(args, 0));
        await open.file.close();
        return status(n, AfcStatus.SUCCESS);
      }
      default:
        return status(n, AfcStatus.OP_NOT_SUPPORTED);
    }
  }

  private async fileInfo(path: string): Promise<Buffer> {
    try {
      const s = await this.store.stat(path);
      return encodeKeyValues({
        st_size: s.size,
        st_blocks: s.blocks,
        st_nlink: s.nlink,
        st_ifmt: s.kind === 'dir' ? 'S_IFDIR' : 'S_IFREG',
        st_mtime: s.mtimeNs,
        st_birthtime: s.birthtimeNs,
      });
    } catch (err) {
      // pymobiledevice3 reads READ_ERROR from GET_FILE_INFO as "no such
      // file" (reference §2.3.2), so a missing path answers that here.
      if (err instanceof AfcError && err.code === AfcStatus.OBJECT_NOT_FOUND) throw new AfcError(AfcStatus.READ_ERROR, err.message);
      throw err;
    }
  }

  private async open(mode: number, path: string): Promise<number> {
    const flags = openFlags(mode);
    if (!flags) throw new AfcError(AfcStatus.INVALID_ARG, `FILE_OPEN mode ${mode}`);
    if (this.files.size >= this.limits.maxOpenFiles) throw new AfcError(AfcStatus.NO_RESOURCES, 'too many open files');
    const file = await this.store.open(path, flags);
    const handle = this.nextHandle++;
    this.files.set(handle, { file, flags, position: 0 });
    return handle;
  }

  private async read(open: OpenFile, length: number): Promise<Buffer> {
    if (!open.flags.read) throw new AfcError(AfcStatus.PERM_DENIED, 'handle not open for reading');
    const bytes = await open.file.read(open.position, Math.min(length, this.limits.maxReadBytes));
    open.position += bytes.length;
    return bytes;
  }

  private async seek(open: OpenFile, whence: number, offset: number): Promise<void> {
    let base: number;
    if (whence === AfcSeekWhence.SET) base = 0;
    else if (whence === AfcSeekWhence.CUR) base = open.position;
    else if (whence === AfcSeekWhence.END) base = await open.file.size();
    else throw new AfcError(AfcStatus.INVALID_ARG, `FILE_SEEK whence ${whence}`);
    const position = base + offset;
    if (!(position >= 0 && position <= MAX_OFFSET)) throw new AfcError(AfcStatus.INVALID_ARG, `FILE_SEEK to ${position}`);
    open.position = position;
  }

  /**
   * The first 8 body bytes are the handle (header data, as hosts send it);
   * everything after is file data, streamed. On an error the rest of the
   * body is still read and dropped so the next packet starts in the right
   * place, then the error is the answer.
   */
  private async fileWrite(header: AfcHeader, body: number, reader: ByteReader): Promise<Reply> {
    let failure: AfcError | undefined;
    let open: OpenFile | undefined;
    let remaining = body;
    if (body < 8) failure = new AfcError(AfcStatus.INVALID_ARG, 'FILE_WRITE without a handle');
    else {
      remaining -= 8;
      try {
        open = this.handle(await required(reader, 8));
        if (!open.flags.write) throw new AfcError(AfcStatus.PERM_DENIED, 'handle not open for writing');
        if (open.flags.append) open.position = await open.file.size();
        if (open.position + remaining > MAX_OFFSET) throw new AfcError(AfcStatus.INVALID_ARG, 'write past the largest offset');
      } catch (err) {
        failure = asStatusError(err);
      }
    }
    while (remaining > 0) {
      const piece = await reader.readSome(Math.min(remaining, WRITE_PIECE));
      remaining -= piece.length;
      if (failure || !open) continue;
      try {
        await open.file.write(open.position, piece);
        open.position += piece.length;
      } catch (err) {
        failure = asStatusError(err);
      }
    }
    return status(header.packetNum, failure ? (failure.code as number) : AfcStatus.SUCCESS);
  }

  private handle(args: Buffer): OpenFile {
    const open = this.files.get(numberArg(args, 0));
    if (!open) throw new AfcError(AfcStatus.INVALID_ARG, 'no such file handle');
    return open;
  }

  private async closeAll(): Promise<void> {
    const open = [...this.files.values()];
    this.files.clear();
    await Promise.allSettled(open.map((f) => f.file.close()));
  }
}

function status(packetNum: bigint, code: number): Reply {
  return encodePacket(AfcOpcode.STATUS, packetNum, u64(code));
}

function data(packetNum: bigint, bytes: Buffer): Reply {
  return encodePacket(AfcOpcode.DATA, packetNum, undefined, bytes);
}

function handleReply(packetNum: bigint, op: number, value: number): Reply {
  return encodePacket(op, packetNum, u64(value));
}

function asStatusError(err: unknown): AfcError {
  if (err instanceof AfcError && typeof err.code === 'number') return err;
  return new AfcError(AfcStatus.INTERNAL_ERROR, err instanceof Error ? err.message : String(err));
}

async function required(reader: ByteReader, n: number): Promise<Buffer> {
  const bytes = await reader.readExactly(n);
  if (!bytes) throw new AfcError('ERR_AFC_CLOSED', 'peer hung up inside a packet');
  return bytes;
}

function numberArg(args: Buffer, offset: number): number {
  if (args.length < offset + 8) throw new AfcError(AfcStatus.INVALID_ARG, 'argument missing');
  const v = args.readBigUInt64LE(offset);
  // A value no handle, mode or length can have; handled as "too big" by callers' checks.
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

function signedArg(args: Buffer, offset: number): number {
  if (args.length < offset + 8) throw new AfcError(AfcStatus.INVALID_ARG, 'argument missing');
  return Number(args.readBigInt64LE(offset));
}

function offsetArg(args: Buffer, offset: number): number {
  const v = numberArg(args, offset);
  if (v > MAX_OFFSET) throw new AfcError(AfcStatus.INVALID_ARG, `size ${v}`);
  return v;
}

function pathArg(args: Buffer, offset: number): string {
  const path = args.length > offset ? decodeStrings(args.subarray(offset))[0] : undefined;
  if (!path) throw new AfcError(AfcStatus.INVALID_ARG, 'path missing');
  return path;
}
