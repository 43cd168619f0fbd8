// The default AFC backend: a tree in memory with a byte budget. File bytes
// live in 1 MiB pages allocated on first write (holes read as zeros), so a
// seek far past the end costs nothing and a 1 MiB FILE_WRITE is one copy.
// Every page and every node is charged to the budget, so neither big files
// nor millions of empty directories can grow the process past it.
import { AfcError, AfcStatus, type AfcOpenFlags } from '../../afc/protocol.js';
import {
  blocksOf,
  nowNs,
  splitAfcPath,
  type AfcFsInfo,
  type AfcStat,
  type AfcStore,
  type AfcStoreFile,
} from './afc-store.js';

export const DEFAULT_MEMORY_CAPACITY = 1024 * 1024 * 1024;
const PAGE = 1024 * 1024;
/** What a node costs against the budget besides its name and pages. */
const NODE_OVERHEAD = 256;
const BLOCK_SIZE = 4096;

interface DirNode {
  kind: 'dir';
  children: Map<string, Node>;
  mtimeNs: bigint;
  birthtimeNs: bigint;
}

interface FileNode {
  kind: 'file';
  pages: Map<number, Buffer>;
  size: number;
  mtimeNs: bigint;
  birthtimeNs: bigint;
  /** Handles open on it; an unlinked file keeps its bytes until the last one closes, as POSIX does. */
  openCount: number;
  linked: boolean;
}

type Node = DirNode | FileNode;

function newDir(): DirNode {
  const t = nowNs();
  return { kind: 'dir', children: new Map(), mtimeNs: t, birthtimeNs: t };
}

function newFile(): FileNode {
  const t = nowNs();
  return { kind: 'file', pages: new Map(), size: 0, mtimeNs: t, birthtimeNs: t, openCount: 0, linked: true };
}

export class MemoryAfcStore implements AfcStore {
  private readonly root: DirNode = newDir();
  private used = 0;

  constructor(readonly capacity = DEFAULT_MEMORY_CAPACITY) {}

  /** Bytes charged to the budget right now (pages and nodes). */
  get usedBytes(): number {
    return this.used;
  }

  async fsInfo(): Promise<AfcFsInfo> {
    return { totalBytes: this.capacity, freeBytes: Math.max(0, this.capacity - this.used), blockSize: BLOCK_SIZE };
  }

  async list(path: string): Promise<string[]> {
    const node = this.lookup(splitAfcPath(path), path);
    if (node.kind !== 'dir') throw new AfcError(AfcStatus.READ_ERROR, `${path}: not a directory`);
    return [...node.children.keys()];
  }

  async stat(path: string): Promise<AfcStat> {
    const node = this.lookup(splitAfcPath(path), path);
    if (node.kind === 'file') {
      const held = [...node.pages.values()].reduce((n, p) => n + p.length, 0);
      return { kind: 'file', size: node.size, blocks: blocksOf(held), nlink: 1, mtimeNs: node.mtimeNs, birthtimeNs: node.birthtimeNs };
    }
    let subdirs = 0;
    for (const child of node.children.values()) if (child.kind === 'dir') subdirs++;
    // APFS-like: a directory's size grows with its entries.
    const size = 32 * (node.children.size + 2);
    return { kind: 'dir', size, blocks: 0, nlink: 2 + subdirs, mtimeNs: node.mtimeNs, birthtimeNs: node.birthtimeNs };
  }

  async makeDirectory(path: string): Promise<void> {
    let dir = this.root;
    for (const name of splitAfcPath(path)) {
      const child = dir.children.get(name);
      if (child?.kind === 'file') throw new AfcError(AfcStatus.OBJECT_EXISTS, `${path}: a file is in the way`);
      if (child) {
        dir = child;
        continue;
      }
      const made = newDir();
      this.attach(dir, name, made);
      dir = made;
    }
  }

  async remove(path: string, recursive: boolean): Promise<void> {
    const parts = splitAfcPath(path);
    if (parts.length === 0) throw new AfcError(AfcStatus.PERM_DENIED, 'the AFC root cannot be removed');
    const { parent, name } = this.parentOf(parts, path);
    const node = parent.children.get(name);
    if (!node) throw new AfcError(AfcStatus.OBJECT_NOT_FOUND, path);
    if (node.kind === 'dir' && node.children.size > 0 && !recursive) throw new AfcError(AfcStatus.DIR_NOT_EMPTY, path);
    this.detach(parent, name);
  }

  async rename(from: string, to: string): Promise<void> {
    const src = splitAfcPath(from);
    const dst = splitAfcPath(to);
    if (src.length === 0 || dst.length === 0) throw new AfcError(AfcStatus.PERM_DENIED, 'the AFC root cannot be renamed');
    const a = this.parentOf(src, from);
    const node = a.parent.children.get(a.name);
    if (!node) throw new AfcError(AfcStatus.OBJECT_NOT_FOUND, from);
    const b = this.parentOf(dst, to);
    if (a.parent === b.parent && a.name === b.name) return;
    if (node.kind === 'dir' && dst.length > src.length && src.every((part, i) => dst[i] === part)) {
      throw new AfcError(AfcStatus.INVALID_ARG, `${to} is inside ${from}`);
    }
    const existing = b.parent.children.get(b.name);
    if (existing) {
      if (existing.kind === 'dir' && node.kind === 'file') throw new AfcError(AfcStatus.OBJECT_IS_DIR, to);
      if (existing.kind === 'file' && node.kind === 'dir') throw new AfcError(AfcStatus.INVALID_ARG, `${to} is a file`);
      if (existing.kind === 'dir' && existing.children.size > 0) throw new AfcError(AfcStatus.DIR_NOT_EMPTY, to);
    }
    // Charged before anything moves, so a full store leaves the tree as it was.
    this.charge(Buffer.byteLength(b.name) - Buffer.byteLength(a.name));
    if (existing) this.detach(b.parent, b.name);
    a.parent.children.delete(a.name);
    b.parent.children.set(b.name, node);
    const t = nowNs();
    a.parent.mtimeNs = t;
    b.parent.mtimeNs = t;
  }

  async open(path: string, options: AfcOpenFlags): Promise<AfcStoreFile> {
    const parts = splitAfcPath(path);
    if (parts.length === 0) throw new AfcError(AfcStatus.OBJECT_IS_DIR, path);
    const { parent, name } = this.parentOf(parts, path);
    let node = parent.children.get(name);
    if (node?.kind === 'dir') throw new AfcError(AfcStatus.OBJECT_IS_DIR, path);
    if (!node) {
      if (!options.create) throw new AfcError(AfcStatus.OBJECT_NOT_FOUND, path);
      node = newFile();
      this.attach(parent, name, node);
    } else if (options.truncate) {
      this.truncateFile(node, 0);
    }
    return this.handleFor(node);
  }

  private handleFor(file: FileNode): AfcStoreFile {
    file.openCount++;
    let open = true;
    const check = () => {
      if (!open) throw new AfcError(AfcStatus.INVALID_ARG, 'file already closed');
    };
    return {
      size: async () => file.size,
      read: async (position, length) => {
        check();
        return readFile(file, position, length);
      },
      write: async (position, data) => {
        check();
        this.writeFile(file, position, data);
      },
      truncate: async (size) => {
        check();
        this.truncateFile(file, size);
      },
      close: async () => {
        if (!open) return;
        open = false;
        file.openCount--;
        if (!file.linked && file.openCount === 0) this.release(file);
      },
    };
  }

  private writeFile(file: FileNode, position: number, data: Buffer): void {
    let done = 0;
    try {
      while (done < data.length) {
        const at = position + done;
        const index = Math.floor(at / PAGE);
        const offset = at - index * PAGE;
        const n = Math.min(PAGE - offset, data.length - done);
        const page = this.growPage(file, index, offset + n);
        data.copy(page, offset, done, done + n);
        done += n;
      }
    } finally {
      // A write cut short by the budget keeps what fit, as a full disk does.
      if (done > 0) {
        file.size = Math.max(file.size, position + done);
        file.mtimeNs = nowNs();
      }
    }
  }

  /** The page, at least `length` bytes long; grows by doubling so small appends stay linear. */
  private growPage(file: FileNode, index: number, length: number): Buffer {
    const old = file.pages.get(index);
    if (old && old.length >= length) return old;
    const want = Math.min(PAGE, Math.max(length, 2 * (old?.length ?? 0), BLOCK_SIZE));
    this.charge(want - (old?.length ?? 0));
    const page = Buffer.alloc(want);
    old?.copy(page);
    file.pages.set(index, page);
    return page;
  }

  private truncateFile(file: FileNode, size: number): void {
    if (size < file.size) {
      for (const [index, page] of file.pages) {
        const start = index * PAGE;
        if (start >= size) {
          file.pages.delete(index);
          this.charge(-page.length);
        } else if (start + page.length > size) {
          // Bytes past the new end must read as zeros if the file grows again.
          page.fill(0, size - start);
        }
      }
    }
    file.size = size;
    file.mtimeNs = nowNs();
  }

  private lookup(parts: string[], path: string): Node {
    let node: Node = this.root;
    for (const name of parts) {
      const next: Node | undefined = node.kind === 'dir' ? node.children.get(name) : undefined;
      if (!next) throw new AfcError(AfcStatus.OBJECT_NOT_FOUND, path);
      node = next;
    }
    return node;
  }

  private parentOf(parts: string[], path: string): { parent: DirNode; name: string } {
    const parent = this.lookup(parts.slice(0, -1), path);
    if (parent.kind !== 'dir') throw new AfcError(AfcStatus.OBJECT_NOT_FOUND, path);
    return { parent, name: parts[parts.length - 1]! };
  }

  private attach(parent: DirNode, name: string, node: Node): void {
    this.charge(NODE_OVERHEAD + Buffer.byteLength(name));
    parent.children.set(name, node);
    parent.mtimeNs = nowNs();
  }

  private detach(parent: DirNode, name: string): void {
    const node = parent.children.get(name)!;
    parent.children.delete(name);
    parent.mtimeNs = nowNs();
    this.charge(-(NODE_OVERHEAD + Buffer.byteLength(name)));
    this.unlinkTree(node);
  }

  private unlinkTree(node: Node): void {
    if (node.kind === 'dir') {
      for (const [name, child] of node.children) {
        this.charge(-(NODE_OVERHEAD + Buffer.byteLength(name)));
        this.unlinkTree(child);
      }
      node.children.clear();
      return;
    }
    node.linked = false;
    if (node.openCount === 0) this.release(node);
  }

  private release(file: FileNode): void {
    for (const page of file.pages.values()) this.charge(-page.length);
    file.pages.clear();
  }

  private charge(bytes: number): void {
    if (bytes > 0 && this.used + bytes > this.capacity) {
      throw new AfcError(AfcStatus.NO_SPACE_LEFT, `the simulated phone's ${this.capacity}-byte store is full`);
    }
    this.used += bytes;
  }
}

function readFile(file: FileNode, position: number, length: number): Buffer {
  const n = Math.max(0, Math.min(length, file.size - position));
  const out = Buffer.alloc(n);
  let done = 0;
  while (done < n) {
    const at = position + done;
    const index = Math.floor(at / PAGE);
    const offset = at - index * PAGE;
    const k = Math.min(PAGE - offset, n - done);
    const page = file.pages.get(index);
    // Past a page's allocated length (or with no page at all) the bytes are a hole: zeros.
    if (page && offset < page.length) page.copy(out, done, offset, Math.min(offset + k, page.length));
    done += k;
  }
  return out;
}
