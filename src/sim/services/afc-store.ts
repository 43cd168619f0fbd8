// What the simulated AFC service stores files in: an interface with two
// backends (in memory, or a directory on the host), and the one path rule
// both share. Store methods throw AfcError with a device status code, which
// the service sends back as a STATUS reply.
import { AfcError, AfcStatus, type AfcOpenFlags } from '../../afc/protocol.js';

export type AfcNodeKind = 'file' | 'dir';

export interface AfcStat {
  kind: AfcNodeKind;
  size: number;
  /** 512-byte blocks, as st_blocks. */
  blocks: number;
  nlink: number;
  mtimeNs: bigint;
  birthtimeNs: bigint;
}

export interface AfcFsInfo {
  totalBytes: number;
  freeBytes: number;
  blockSize: number;
}

/** An open file. Positions are absolute: the service keeps each handle's offset. */
export interface AfcStoreFile {
  size(): Promise<number>;
  /** Up to `length` bytes from `position` (fewer at the end of the file). */
  read(position: number, length: number): Promise<Buffer>;
  write(position: number, data: Buffer): Promise<void>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}


export interface AfcStore {
  fsInfo(): Promise<AfcFsInfo>;
  /** Entry names of a directory, without "." and "..". */
  list(path: string): Promise<string[]>;
  stat(path: string): Promise<AfcStat>;
  /** Creates the directory and any missing parents; an existing directory is fine. */
  makeDirectory(path: string): Promise<void>;
  /** A file or an empty directory; with `recursive`, a directory and all it holds. */
  remove(path: string, recursive: boolean): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Opens (creating or truncating as `flags` say); `append` is the service's business, not the store's. */
  open(path: string, flags: AfcOpenFlags): Promise<AfcStoreFile>;
  /** Releases what the store holds (open host files); the store is not used afterwards. */
  close?(): Promise<void>;
}

/** As on APFS and ext4. */
export const NAME_MAX = 255;

/**
 * An AFC path as components below the service root. Leading "/" means the
 * root (hosts send "/DCIM" and "DCIM" alike); "." is dropped and ".." steps
 * up, but never above the root: that is PERM_DENIED, not a silent clamp,
 * so a client probing for an escape is told no.
 */
export function splitAfcPath(path: string): string[] {
  if (path.length === 0) throw new AfcError(AfcStatus.INVALID_ARG, 'empty path');
  if (path.includes('\0')) throw new AfcError(AfcStatus.INVALID_ARG, 'NUL in path');
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new AfcError(AfcStatus.PERM_DENIED, `${path}: outside the AFC root`);
      parts.pop();
      continue;
    }
    if (Buffer.byteLength(part) > NAME_MAX) throw new AfcError(AfcStatus.INVALID_ARG, `${path}: a name longer than ${NAME_MAX} bytes`);
    parts.push(part);
  }
  return parts;
}

export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

export function blocksOf(size: number): number {
  return Math.ceil(size / 512);
}
