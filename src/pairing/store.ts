// The lockdown directory: one `<UDID>.plist` pair record per device and
// `SystemConfiguration.plist` holding the host's SystemBUID, laid out as
// usbmuxd lays it out so an existing /var/lib/lockdown keeps working.
// Unlike usbmuxd, records hold private keys here and are treated as such:
// the directory is 0700 and every file 0600 whatever the umask.
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { isPlistDict, parsePlist, toXml, type PlistDict } from '../protocol/plist-codec.js';
import { fsyncDir, readRegularFile, removeStaleTemps, secureFile, writeFileAtomic } from './safe-fs.js';
import { isValidUdid } from './udid.js';

// The values usbmuxd puts in a Result's Number field for these failures.
const ERRNO = { EINVAL: 22, ENOENT: 2, EIO: 5 } as const;

export type PairRecordErrorCode = keyof typeof ERRNO;

export class PairRecordError extends Error {
  readonly code: PairRecordErrorCode;
  readonly errno: number;
  constructor(code: PairRecordErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PairRecordError';
    this.code = code;
    this.errno = ERRNO[code];
  }
}

export interface PairRecordStoreOptions {
  dir: string;
  /** gid to own the dir (tsmuxd -U user) */
  gid?: number;
  uid?: number;
}

/** Where usbmuxd keeps records on Linux when root; a per-user dir otherwise. */
export function defaultConfigDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/lockdown';
  const xdg = process.env.XDG_DATA_HOME;
  // The XDG spec says a relative XDG_DATA_HOME is invalid and to be ignored.
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), '.local', 'share');
  return join(base, 'tsmuxd', 'lockdown');
}

const SYSTEM_CONFIG = 'SystemConfiguration.plist';
const FILE_MODE = 0o600;
// Long enough that no live writer (in this process or another daemon
// sharing the dir) is still between its open and its rename.
const STALE_TEMP_MS = 60_000;

/** The UDID a directory entry is the record of, if it is one. */
function recordUdid(name: string): string | undefined {
  if (!name.endsWith('.plist')) return undefined;
  const udid = name.slice(0, -'.plist'.length);
  return isValidUdid(udid) ? udid : undefined;
}

// PairRecordIDs come from clients, so they are quoted (escaping controls)
// and cut short before they reach a message that may be logged.
function quote(udid: unknown): string {
  return typeof udid === 'string' ? JSON.stringify(udid.slice(0, 64)) : typeof udid;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function storeError(err: unknown, message: string): PairRecordError {
  if (err instanceof PairRecordError) return err;
  const code = errnoCode(err) === 'ENOENT' ? 'ENOENT' : 'EIO';
  const detail = err instanceof Error ? `: ${err.message}` : '';
  return new PairRecordError(code, `${message}${detail}`, { cause: err });
}

export class PairRecordStore {
  readonly dir: string;
  readonly #dirMode: number;
  readonly #uid: number | undefined;
  readonly #gid: number | undefined;
  #buid: Promise<string> | undefined;

  private constructor(dir: string, options: PairRecordStoreOptions) {
    this.dir = dir;
    this.#uid = options.uid;
    this.#gid = options.gid;
    this.#dirMode = options.gid !== undefined ? 0o770 : 0o700;
  }

  /**
   * Creates the directory (with parents) or tightens an existing one.
   *
   * Without gid the directory is 0700. With gid (tsmuxd -U) it is chowned
   * to uid:gid and made 0770: usbmuxd -U makes it 02775 so the dropped user
   * can write to it, but the world bits would expose the keys, and with
   * every file 0600 the setgid bit buys nothing. Existing records and
   * SystemConfiguration.plist are brought to 0600 and the same owner, so
   * files written by a root run stay readable after privileges are dropped.
   */
  static async open(options: PairRecordStoreOptions): Promise<PairRecordStore> {
    if (typeof options.dir !== 'string' || options.dir === '') {
      // resolve('') is the working directory, never what was meant.
      throw new PairRecordError('EINVAL', 'pair record directory is empty');
    }
    const store = new PairRecordStore(resolve(options.dir), options);
    try {
      await store.#prepareDir();
      for (const name of await fs.readdir(store.dir)) {
        if (name === SYSTEM_CONFIG || recordUdid(name) !== undefined) {
          await secureFile(join(store.dir, name), FILE_MODE, store.#uid, store.#gid);
        }
      }
      await removeStaleTemps(store.dir, STALE_TEMP_MS);
    } catch (err) {
      throw storeError(err, `cannot prepare pair record directory ${store.dir}`);
    }
    return store;
  }

  /**
   * The host's SystemBUID, created on first use as an uppercase UUIDv4 (the
   * form Apple's and usbmuxd's files hold). Calls share one promise, and
   * creation cannot replace a value another process wrote first.
   */
  systemBUID(): Promise<string> {
    if (this.#buid === undefined) {
      const pending = this.#loadOrCreateBUID();
      this.#buid = pending;
      // A failure (a full disk, say) is not remembered; the next call retries.
      pending.catch(() => {
        if (this.#buid === pending) this.#buid = undefined;
      });
    }
    return this.#buid;
  }

  /**
   * The record file's bytes, verbatim, as ReadPairRecord returns them, once
   * they parse as a plist dict: a corrupt or half-written file is an error
   * that names it, not bytes every client would fail on in its own way.
   */
  async read(udid: string): Promise<Buffer> {
    return (await this.#readChecked(udid)).bytes;
  }

  async readRecord(udid: string): Promise<PlistDict> {
    return (await this.#readChecked(udid)).record;
  }

  /** The record file, read and parsed once, for both of the above. */
  async #readChecked(udid: string): Promise<{ bytes: Buffer; record: PlistDict }> {
    const path = this.#recordPath(udid);
    let bytes: Buffer;
    try {
      bytes = await readRegularFile(path);
    } catch (err) {
      throw storeError(err, `cannot read pair record ${quote(udid)}`);
    }
    let record;
    try {
      record = parsePlist(bytes);
    } catch (err) {
      throw new PairRecordError('EIO', `pair record ${path} is corrupt: ${(err as Error).message}`, { cause: err });
    }
    if (!isPlistDict(record)) throw new PairRecordError('EIO', `pair record ${path} is not a dict`);
    return { bytes, record };
  }

  /**
   * Stores data (XML or bplist00) as an XML record, as SavePairRecord does.
   * Re-encoding means a record round-trips by value, not by bytes.
   */
  async save(udid: string, data: Buffer): Promise<void> {
    const path = this.#recordPath(udid);
    if (!(data instanceof Uint8Array) || data.length < 8) {
      throw new PairRecordError('EINVAL', `pair record data for ${quote(udid)} is missing or too short`);
    }
    let xml: string;
    try {
      const record = parsePlist(data);
      if (!isPlistDict(record)) throw new Error('not a dict');
      xml = toXml(record);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new PairRecordError('EINVAL', `pair record data for ${quote(udid)} is invalid: ${why}`, { cause: err });
    }
    try {
      await this.#write(path, xml, false);
    } catch (err) {
      // A missing file here means the directory went away, not the record.
      const wrapped = storeError(err, `cannot save pair record ${quote(udid)}`);
      throw wrapped.code === 'ENOENT' ? new PairRecordError('EIO', wrapped.message, { cause: err }) : wrapped;
    }
  }

  async delete(udid: string): Promise<void> {
    const path = this.#recordPath(udid);
    try {
      await fs.unlink(path);
      await fsyncDir(this.dir);
    } catch (err) {
      throw storeError(err, `cannot delete pair record ${quote(udid)}`);
    }
  }

  /** UDIDs that have a record, sorted. */
  async list(): Promise<string[]> {
    let entries;
    try {
      entries = await fs.readdir(this.dir, { withFileTypes: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw storeError(err, `cannot list ${this.dir}`);
    }
    // Symlinks are left out: read() refuses to follow them.
    const udids = entries.filter((e) => e.isFile()).map((e) => recordUdid(e.name));
    return udids.filter((u): u is string => u !== undefined).sort();
  }

  #recordPath(udid: unknown): string {
    if (!isValidUdid(udid)) throw new PairRecordError('EINVAL', `invalid pair record id ${quote(udid)}`);
    return this.#inside(`${udid}.plist`);
  }

  // The UDID pattern already excludes separators and dots; this is the
  // second lock, so no future caller can reach outside dir by mistake.
  #inside(name: string): string {
    const path = resolve(this.dir, name);
    if (dirname(path) !== this.dir || basename(path) !== name) {
      throw new PairRecordError('EINVAL', `${quote(name)} is not a file name inside ${this.dir}`);
    }
    return path;
  }

  async #prepareDir(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: this.#dirMode });
    const st = await fs.stat(this.dir);
    if (!st.isDirectory()) throw Object.assign(new Error(`${this.dir} is not a directory`), { code: 'ENOTDIR' });
    // chown first: it may clear mode bits, chmod never changes the owner.
    if ((this.#uid !== undefined && st.uid !== this.#uid) || (this.#gid !== undefined && st.gid !== this.#gid)) {
      await fs.chown(this.dir, this.#uid ?? -1, this.#gid ?? -1);
    }
    // Narrower modes are widened too: the daemon must be able to write here.
    if ((st.mode & 0o7777) !== this.#dirMode) await fs.chmod(this.dir, this.#dirMode);
  }

  // A directory deleted under a running daemon is recreated once, as
  // usbmuxd recreates its config dir before every write.
  async #write(path: string, data: string, exclusive: boolean): Promise<void> {
    // Only root can give a file away; an unprivileged daemon (including one
    // that has dropped to -U's user) creates files it already owns.
    const asRoot = process.getuid?.() === 0;
    const options = {
      mode: FILE_MODE,
      exclusive,
      uid: asRoot ? this.#uid : undefined,
      gid: asRoot ? this.#gid : undefined,
    };
    try {
      await writeFileAtomic(path, data, options);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      await this.#prepareDir();
      await writeFileAtomic(path, data, options);
    }
  }

  async #loadOrCreateBUID(): Promise<string> {
    const path = this.#inside(SYSTEM_CONFIG);
    // Retried only when another process creates the file between our read
    // and our create; its value then wins.
    for (let attempt = 0; attempt < 3; attempt++) {
      const config = await this.#readSystemConfig(path);
      const existing = config?.SystemBUID;
      if (typeof existing === 'string' && existing !== '') return existing;
      const buid = randomUUID().toUpperCase();
      try {
        // Other keys in an existing file are kept; only a missing file is
        // created exclusively, an existing one without a BUID is replaced.
        await this.#write(path, toXml({ ...config, SystemBUID: buid }), config === undefined);
        return buid;
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') continue;
        throw storeError(err, `cannot write ${path}`);
      }
    }
    throw new PairRecordError('EIO', `${path} keeps changing under us`);
  }

  // A corrupt file is reported rather than regenerated: the BUID is the
  // host's identity to every paired device, and replacing it silently would
  // hide whatever damaged the file.
  async #readSystemConfig(path: string): Promise<PlistDict | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readRegularFile(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw storeError(err, `cannot read ${path}`);
    }
    let config;
    try {
      config = parsePlist(bytes);
    } catch (err) {
      throw new PairRecordError('EIO', `${path} is corrupt: ${(err as Error).message}`, { cause: err });
    }
    if (!isPlistDict(config)) throw new PairRecordError('EIO', `${path} is not a dict`);
    return config;
  }
}
