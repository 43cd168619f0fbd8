// An AFC backend on a host directory (for benchmarks and for inspecting what
// a client wrote). The directory is a jail: paths are resolved below it
// component by component, ".." cannot climb out (splitAfcPath), and any
// symlink on the way is refused, final component included, so a link
// planted in the tree cannot point the service at the rest of the host.
// Files are opened with O_NOFOLLOW for the same reason. (A symlink swapped in
// between the check and the use is not defended against: this is a
// simulator, not a security boundary against local users.)
import { constants, type BigIntStats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, rmdir, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { AfcError, AfcStatus, type AfcOpenFlags } from '../../afc/protocol.js';
import { blocksOf, splitAfcPath, type AfcFsInfo, type AfcStat, type AfcStore, type AfcStoreFile } from './afc-store.js';

const ERRNO_STATUS: Record<string, number> = {
  ENOENT: AfcStatus.OBJECT_NOT_FOUND,
  ENOTDIR: AfcStatus.OBJECT_NOT_FOUND,
  EEXIST: AfcStatus.OBJECT_EXISTS,
  EISDIR: AfcStatus.OBJECT_IS_DIR,
  ENOTEMPTY: AfcStatus.DIR_NOT_EMPTY,
  ENOSPC: AfcStatus.NO_SPACE_LEFT,
  EDQUOT: AfcStatus.NO_SPACE_LEFT,
  EACCES: AfcStatus.PERM_DENIED,
  EPERM: AfcStatus.PERM_DENIED,
  ELOOP: AfcStatus.PERM_DENIED,
  EROFS: AfcStatus.PERM_DENIED,
  EINVAL: AfcStatus.INVALID_ARG,
  ENAMETOOLONG: AfcStatus.INVALID_ARG,
  EMFILE: AfcStatus.NO_RESOURCES,
  ENFILE: AfcStatus.NO_RESOURCES,
  EBUSY: AfcStatus.OBJECT_BUSY,
};

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/** Runs a host fs call, turning its errno into the AFC status a phone would send. */
async function fsCall<T>(path: string, call: () => Promise<T>, overrides: Record<string, number> = {}): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof AfcError) throw err;
    const errno = errnoOf(err) ?? '';
    throw new AfcError(overrides[errno] ?? ERRNO_STATUS[errno] ?? AfcStatus.IO_ERROR, `${path}: ${errno || String(err)}`);
  }
}

export class DirectoryAfcStore implements AfcStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  async fsInfo(): Promise<AfcFsInfo> {
    const s = await fsCall('/', () => statfs(this.root));
    return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize, blockSize: s.bsize };
  }

  async list(path: string): Promise<string[]> {
    const { host, stats } = await this.existing(path);
    if (!stats.isDirectory()) throw new AfcError(AfcStatus.READ_ERROR, `${path}: not a directory`);
    return fsCall(path, () => readdir(host));
  }

  async stat(path: string): Promise<AfcStat> {
    const { stats } = await this.existing(path);
    const common = {
      size: Number(stats.size),
      blocks: Number(stats.blocks),
      nlink: Number(stats.nlink),
      mtimeNs: stats.mtimeNs,
      // Filesystems without a birth time report 0; the change time is the closest stand-in.
      birthtimeNs: stats.birthtimeNs > 0n ? stats.birthtimeNs : stats.ctimeNs,
    };
    if (stats.isDirectory()) return { kind: 'dir', ...common };
    return { kind: 'file', ...common, blocks: common.blocks || blocksOf(common.size) };
  }

  async makeDirectory(path: string): Promise<void> {
    const host = await this.resolve(path);
    await fsCall(path, () => mkdir(host, { recursive: true }), { EEXIST: AfcStatus.OBJECT_EXISTS, ENOTDIR: AfcStatus.OBJECT_EXISTS });
  }

  async remove(path: string, recursive: boolean): Promise<void> {
    if (splitAfcPath(path).length === 0) throw new AfcError(AfcStatus.PERM_DENIED, 'the AFC root cannot be removed');
    const { host, stats } = await this.existing(path);
    if (!stats.isDirectory()) await fsCall(path, () => unlink(host));
    else if (recursive) await fsCall(path, () => rm(host, { recursive: true }));
    else await fsCall(path, () => rmdir(host), { EEXIST: AfcStatus.DIR_NOT_EMPTY });
  }

  async rename(from: string, to: string): Promise<void> {
    if (splitAfcPath(from).length === 0 || splitAfcPath(to).length === 0) {
      throw new AfcError(AfcStatus.PERM_DENIED, 'the AFC root cannot be renamed');
    }
    const { host: source } = await this.existing(from);
    const target = await this.resolve(to);
    await fsCall(`${from} -> ${to}`, () => rename(source, target));
  }

  async open(path: string, flags: AfcOpenFlags): Promise<AfcStoreFile> {
    if (splitAfcPath(path).length === 0) throw new AfcError(AfcStatus.OBJECT_IS_DIR, path);
    const host = await this.resolve(path);
    const stats = await fsCall(path, () => lstat(host)).catch((err: AfcError) => {
      if (err.code === AfcStatus.OBJECT_NOT_FOUND && flags.create) return undefined;
      throw err;
    });
    if (stats?.isDirectory()) throw new AfcError(AfcStatus.OBJECT_IS_DIR, path);
    if (stats && !stats.isFile()) throw new AfcError(AfcStatus.PERM_DENIED, `${path}: not a regular file`);
    let mode = flags.read && flags.write ? constants.O_RDWR : flags.write ? constants.O_WRONLY : constants.O_RDONLY;
    if (flags.create) mode |= constants.O_CREAT;
    if (flags.truncate) mode |= constants.O_TRUNC;
    mode |= constants.O_NOFOLLOW;
    const fh = await fsCall(path, () => open(host, mode, 0o644));
    return hostFile(fh, path);
  }

  /** The host path for an AFC path, after refusing symlinks among its existing components. */
  private async resolve(path: string): Promise<string> {
    const parts = splitAfcPath(path);
    let host = this.root;
    for (const part of parts) {
      host = join(host, part);
      let stats;
      try {
        stats = await lstat(host);
      } catch {
        // Missing: nothing below it exists either, so nothing below can be a link.
        break;
      }
      if (stats.isSymbolicLink()) throw new AfcError(AfcStatus.PERM_DENIED, `${path}: a symlink on the way`);
    }
    return join(this.root, ...parts);
  }

  private async existing(path: string): Promise<{ host: string; stats: BigIntStats }> {
    const host = await this.resolve(path);
    const stats = await fsCall(path, () => lstat(host, { bigint: true }));
    if (!stats.isFile() && !stats.isDirectory()) throw new AfcError(AfcStatus.PERM_DENIED, `${path}: not a file or directory`);
    return { host, stats };
  }
}

function hostFile(fh: FileHandle, path: string): AfcStoreFile {
  return {
    size: async () => (await fsCall(path, () => fh.stat())).size,
    read: async (position, length) => {
      const out = Buffer.alloc(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await fsCall(path, () => fh.read(out, filled, length - filled, position + filled));
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return out.subarray(0, filled);
    },
    write: async (position, data) => {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fsCall(path, () => fh.write(data, done, data.length - done, position + done));
        done += bytesWritten;
      }
    },
    truncate: async (size) => fsCall(path, () => fh.truncate(size)),
    close: async () => fsCall(path, () => fh.close()),
  };
}
