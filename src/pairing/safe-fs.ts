// File primitives for a directory that holds private keys: replacement is
// atomic and durable, modes are set explicitly rather than left to the
// umask, and nothing follows a symlink planted at a record's name.
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

// Absent on Windows, where the flag would have nothing to do anyway.
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
// Opening a FIFO someone left at a record's name would otherwise block the
// daemon until a writer appeared; on a regular file the flag does nothing.
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;

// Hidden, so a dot-less pattern (every record and SystemConfiguration.plist)
// can never match one, and tagged so cleanup never touches foreign files.
const TEMP_RE = /^\.tsmuxd-.+\.[0-9a-f]{12}\.tmp$/;

export function isTempName(name: string): boolean {
  return TEMP_RE.test(name);
}

export interface AtomicWriteOptions {
  /** Applied with fchmod after creation, so the umask cannot change it. */
  mode: number;
  uid?: number;
  gid?: number;
  /** Create only: fail with EEXIST rather than replace an existing file. */
  exclusive?: boolean;
}

/**
 * Writes a temp file beside target, fsyncs it, moves it into place and
 * fsyncs the directory, so a crash leaves either the old file or the new
 * one, never a torn one.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array, options: AtomicWriteOptions): Promise<void> {
  const dir = dirname(target);
  const temp = join(dir, `.tsmuxd-${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW;
  const handle = await fs.open(temp, flags, options.mode & 0o600);
  let moved = false;
  try {
    try {
      await handle.chmod(options.mode);
      if (options.uid !== undefined || options.gid !== undefined) {
        await handle.chown(options.uid ?? -1, options.gid ?? -1);
      }
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.exclusive) {
      await linkExclusive(temp, target);
    } else {
      await fs.rename(temp, target);
      moved = true;
    }
  } finally {
    if (!moved) await fs.unlink(temp).catch(() => undefined);
  }
  await fsyncDir(dir);
}

// link(2) fails with EEXIST instead of replacing, which makes "create once"
// atomic across processes. Filesystems without hard links get a check and a
// rename, which is racy but no worse than having no lock at all.
async function linkExclusive(temp: string, target: string): Promise<void> {
  try {
    await fs.link(temp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    const existing = await fs.lstat(target).catch(() => undefined);
    if (existing) throw Object.assign(new Error(`${target} exists`), { code: 'EEXIST' });
    await fs.rename(temp, target);
  }
}

/** Makes a rename or unlink in dir survive a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(dir, constants.O_RDONLY | O_DIRECTORY);
  } catch (err) {
    if (isUnsupportedDirSync(err)) return;
    throw err;
  }
  try {
    await handle.sync();
  } catch (err) {
    if (!isUnsupportedDirSync(err)) throw err;
  } finally {
    await handle.close();
  }
}

// Some filesystems (and Windows) cannot open or fsync a directory; the data
// itself was already synced, so only the rename's durability is at stake.
function isUnsupportedDirSync(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'ENOTSUP' || code === 'EISDIR' || code === 'EPERM' || code === 'EBADF';
}

/** Reads path only if it is a regular file itself, not a link to one. */
export async function readRegularFile(path: string): Promise<Buffer> {
  const handle = await fs.open(path, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    if (!(await handle.stat()).isFile()) {
      throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EFTYPE' });
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/**
 * Brings an existing file to mode and owner without following a link; a
 * path that is not a regular file is left alone. Returns whether it was one.
 */
export async function secureFile(path: string, mode: number, uid?: number, gid?: number): Promise<boolean> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOENT') return false;
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return false;
    if ((st.mode & 0o7777) !== mode) await handle.chmod(mode);
    if ((uid !== undefined && st.uid !== uid) || (gid !== undefined && st.gid !== gid)) {
      await handle.chown(uid ?? -1, gid ?? -1);
    }
    return true;
  } finally {
    await handle.close();
  }
}

/**
 * Removes temp files a killed writer left behind. Only those older than
 * minAgeMs, so a writer in another process sharing the directory keeps its
 * file until its rename.
 */
export async function removeStaleTemps(dir: string, minAgeMs: number): Promise<number> {
  const cutoff = Date.now() - minAgeMs;
  let removed = 0;
  for (const name of await fs.readdir(dir)) {
    if (!isTempName(name)) continue;
    const path = join(dir, name);
    const st = await fs.lstat(path).catch(() => undefined);
    if (!st || !st.isFile() || st.mtimeMs >= cutoff) continue;
    await fs.unlink(path).then(
      () => removed++,
      () => undefined,
    );
  }
  return removed;
}

/**
 * Gives `dir` and everything under it to uid:gid (tsmuxd -U handing its sim
 * state to the user the sims run as). lchown throughout: a symlink is
 * re-owned itself and never followed, so nothing outside `dir` changes.
 */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  const st = await fs.lstat(dir);
  if (st.uid !== uid || st.gid !== gid) await fs.lchown(dir, uid, gid);
  if (!st.isDirectory()) return;
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(path, uid, gid);
    else await fs.lchown(path, uid, gid);
  }
}
