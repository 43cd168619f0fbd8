// The simulated phone's com.apple.afc, driven by the project's AfcClient on
// loopback: 16 MiB up and down with a hash check, the directory operations
// and their status codes, handles (modes, seek, tell, append), the memory
// budget, the exact reply layout a phone uses, FILE_WRITE bodies streamed
// into the store, the directory backend's jail, and hostile packets that
// close only their own connection. (Through the daemon: sim-afc-daemon.test.ts.)
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import { AfcClient } from '../src/afc/client.js';
import { AfcError, AfcStatus, type AfcStatusName } from '../src/afc/protocol.js';
import { MemoryAfcStore } from '../src/sim/services/afc-memory-store.js';
import { splitAfcPath } from '../src/sim/services/afc-store.js';
import { startAfc, type AfcServiceOptions } from '../src/sim/services/afc.js';
import { SLOW, tempDir, waitUntil, within } from './helpers/usbmuxd-harness.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A service on an ephemeral loopback port; `connect` opens sockets that the teardown closes first. */
async function serve(t: Test, options: AfcServiceOptions = {}) {
  const { server, address } = await startAfc(undefined, options);
  const sockets = new Set<net.Socket>();
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const connect = async (): Promise<net.Socket> => {
    const s = net.connect(address as number, '127.0.0.1');
    sockets.add(s);
    s.on('error', () => {});
    await within(new Promise((r) => s.once('connect', r)), SLOW, 'connecting to the AFC service');
    return s;
  };
  return { connect, client: async () => new AfcClient(await connect()) };
}

/** The AFC status a call rejects with (or 'resolved'). */
async function statusOf(p: Promise<unknown>): Promise<AfcStatusName | string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    if (!(err instanceof AfcError)) throw err;
    if (typeof err.code === 'string') return err.code;
    return (Object.entries(AfcStatus).find(([, v]) => v === err.code)?.[0] ?? String(err.code)) as AfcStatusName;
  }
}

// Hand-built packets, independent of src/afc/protocol.ts.
function le(...values: Array<number | bigint>): Buffer {
  const b = Buffer.alloc(8 * values.length);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 8 * i));
  return b;
}
function packet(op: number, num: number | bigint, headerData: Buffer, payload = Buffer.alloc(0), lengths?: { entire: bigint; self: bigint }): Buffer {
  const self = lengths?.self ?? BigInt(40 + headerData.length);
  const entire = lengths?.entire ?? self + BigInt(payload.length);
  return Buffer.concat([Buffer.from('CFA6LPAA'), le(entire, self, num, op), headerData, payload]);
}
/** Reads exactly `n` bytes from a raw socket. */
function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length >= n) {
          socket.off('data', onData);
          socket.off('close', onClose);
          if (got.length > n) socket.unshift(got.subarray(n));
          resolve(got.subarray(0, n));
        }
      };
      const onClose = () => reject(new Error(`closed after ${got.length} of ${n} bytes`));
      socket.on('data', onData);
      socket.once('close', onClose);
    }),
    SLOW,
    `${n} bytes`,
  );
}
const closed = (s: net.Socket) => within(new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r()))), SLOW, 'the close');

t.test('AFC paths stay below the root', async (t) => {
  t.same(splitAfcPath('/'), []);
  t.same(splitAfcPath('/DCIM/./100APPLE//IMG_0001.JPG'), ['DCIM', '100APPLE', 'IMG_0001.JPG']);
  t.same(splitAfcPath('DCIM/x/../y'), ['DCIM', 'y'], '".." inside the tree');
  t.throws(() => splitAfcPath('/..'), { code: AfcStatus.PERM_DENIED });
  t.throws(() => splitAfcPath('a/../../etc/passwd'), { code: AfcStatus.PERM_DENIED });
  t.throws(() => splitAfcPath(''), { code: AfcStatus.INVALID_ARG });
  t.throws(() => splitAfcPath(`/${'n'.repeat(256)}`), { code: AfcStatus.INVALID_ARG }, 'a name over NAME_MAX');
});

t.test('16 MiB up and down, and the directory operations', async (t) => {
  const store = new MemoryAfcStore();
  const { client } = await serve(t, { store });
  const afc = await client();

  const info = await afc.getDeviceInfo();
  t.equal(info.model, 'iPhone15,3');
  t.equal(info.totalBytes, 1024 * MiB, 'FSTotalBytes is the budget');
  t.equal(info.blockSize, 4096);

  const payload = randomBytes(16 * MiB);
  t.equal(await statusOf(afc.upload('/Downloads/big.bin', payload)), 'OBJECT_NOT_FOUND', 'no parent directory yet');
  await afc.makeDirectory('/Downloads/nested/deeper');
  let started = performance.now();
  t.equal(await afc.upload('/Downloads/big.bin', payload), 16 * MiB);
  const upMs = performance.now() - started;
  started = performance.now();
  const back = await afc.download('/Downloads/big.bin');
  const downMs = performance.now() - started;
  t.equal(sha256(back), sha256(payload), 'SHA-256 of the download matches the upload');
  t.comment(`16 MiB over loopback: upload ${upMs.toFixed(0)} ms, download ${downMs.toFixed(0)} ms`);
  t.ok(store.usedBytes >= 16 * MiB, 'the bytes are in the store');

  const stat = await afc.getFileInfo('/Downloads/big.bin');
  t.match(stat, { type: 'S_IFREG', size: 16 * MiB, blocks: (16 * MiB) / 512, nlink: 1 });
  t.ok(stat.mtimeNs > 1_600_000_000_000_000_000n, `st_mtime in ns (${stat.mtimeNs})`);
  t.ok(stat.birthtimeNs > 0n && stat.birthtimeNs <= stat.mtimeNs, 'st_birthtime in ns');
  t.match(await afc.getFileInfo('/Downloads'), { type: 'S_IFDIR', nlink: 3 }, 'a directory with one subdirectory');
  t.same((await afc.readDirectory('/Downloads')).sort(), ['big.bin', 'nested']);
  t.same(await afc.readDirectory('/'), ['Downloads']);

  await afc.renamePath('/Downloads/big.bin', '/Downloads/nested/moved.bin');
  t.equal(await afc.exists('/Downloads/big.bin'), false, 'renamed away');
  t.equal((await afc.getFileInfo('Downloads/nested/moved.bin')).size, 16 * MiB, 'paths without a leading slash too');

  t.equal(await statusOf(afc.getFileInfo('/nope')), 'READ_ERROR', 'GET_FILE_INFO of a missing path: READ_ERROR, as phones answer');
  t.equal(await statusOf(afc.readDirectory('/nope')), 'OBJECT_NOT_FOUND');
  t.equal(await statusOf(afc.readDirectory('/Downloads/nested/moved.bin')), 'READ_ERROR', 'READ_DIR of a file');
  t.equal(await statusOf(afc.open('/nope', 'r')), 'OBJECT_NOT_FOUND');
  t.equal(await statusOf(afc.open('/nope/x', 'w')), 'OBJECT_NOT_FOUND', 'creating under a missing directory');
  t.equal(await statusOf(afc.open('/Downloads', 'r')), 'OBJECT_IS_DIR');
  t.equal(await statusOf(afc.open('/x', 9)), 'INVALID_ARG', 'mode 9');
  t.equal(await statusOf(afc.removePath('/nope')), 'OBJECT_NOT_FOUND');
  t.equal(await statusOf(afc.renamePath('/nope', '/also-nope')), 'OBJECT_NOT_FOUND');
  t.equal(await statusOf(afc.renamePath('/Downloads', '/Downloads/nested/inside')), 'INVALID_ARG', 'a directory into itself');
  t.equal(await statusOf(afc.makeDirectory('/Downloads/nested/moved.bin/sub')), 'OBJECT_EXISTS', 'a file in the way');
  t.equal(await statusOf(afc.makeDirectory('/Downloads/nested')), 'resolved', 'MAKE_DIR of an existing directory');
  t.equal(await statusOf(afc.removePath('/Downloads')), 'DIR_NOT_EMPTY');
  t.equal(await statusOf(afc.getFileInfo('/../etc/passwd')), 'PERM_DENIED', 'no way above the root');
  t.equal(await statusOf(afc.removePath('/')), 'PERM_DENIED');

  await afc.removePath('/Downloads/nested/moved.bin');
  t.ok(store.usedBytes < MiB, 'removing the file gives its pages back');
  await afc.removePath('/Downloads', { recursive: true });
  t.same(await afc.readDirectory('/'), [], 'REMOVE_PATH_AND_CONTENTS');
  t.equal((await afc.getDeviceInfo()).freeBytes, 1024 * MiB, 'all free again');
});

t.test('handles: modes, seek, tell, append, set size, a streamed upload', async (t) => {
  const { client } = await serve(t);
  const afc = await client();
  const h = await afc.open('/f.txt', 'w+');
  t.ok(h > 0, 'a non-zero handle');
  await afc.write(h, Buffer.from('hello world'));
  t.equal(await afc.tell(h), 11);
  await afc.seek(h, 6, 'SET');
  t.equal((await afc.read(h, 100)).toString(), 'world', 'a read is capped by the file');
  t.equal((await afc.read(h, 100)).length, 0, 'then EOF: an empty DATA');
  await afc.seek(h, -5, 'END');
  await afc.write(h, Buffer.from('WORLD'));
  await afc.seek(h, -1, 'CUR');
  t.equal(await afc.tell(h), 10);
  t.equal(await statusOf(afc.seek(h, -100, 'CUR')), 'INVALID_ARG', 'before the start');
  await afc.setFileSize(h, 5);
  await afc.close(h);
  t.equal(await statusOf(afc.close(h)), 'INVALID_ARG', 'a closed handle');
  t.equal((await afc.download('/f.txt')).toString(), 'hello');

  const r = await afc.open('/f.txt', 'r');
  t.equal(await statusOf(afc.write(r, Buffer.from('x'))), 'PERM_DENIED', 'writing a read-only handle');
  t.equal((await afc.read(r, 2)).toString(), 'he', 'and the connection is still in step');
  await afc.close(r);
  const w = await afc.open('/f.txt', 'a');
  t.equal(await statusOf(afc.read(w, 1)), 'PERM_DENIED', 'reading an append-only handle');
  await afc.seek(w, 0, 'SET');
  await afc.write(w, Buffer.from('!'));
  await afc.close(w);
  t.equal((await afc.download('/f.txt')).toString(), 'hello!', 'append ignores the position');
  const rw = await afc.open('/f.txt', 'r+');
  await afc.write(rw, Buffer.from('J'));
  await afc.close(rw);
  t.equal((await afc.download('/f.txt')).toString(), 'Jello!', 'r+ overwrites in place');

  const sparse = await afc.open('/sparse', 'w');
  await afc.seek(sparse, 3 * MiB + 5, 'SET');
  await afc.write(sparse, Buffer.from('end'));
  await afc.close(sparse);
  const hole = await afc.download('/sparse');
  t.equal(hole.length, 3 * MiB + 8);
  t.ok(hole.subarray(0, 3 * MiB + 5).every((b) => b === 0), 'a hole reads as zeros');

  const pieces = Array.from({ length: 300 }, (_, i) => randomBytes(7000 + i));
  const whole = Buffer.concat(pieces);
  t.equal(await afc.upload('/stream.bin', Readable.from(pieces)), whole.length);
  t.equal(sha256(await afc.download('/stream.bin')), sha256(whole), 'a Readable, rechunked');
  t.equal(await statusOf(afc.read(12345, 1)), 'INVALID_ARG', 'an unknown handle');
});

t.test('the memory budget: NO_SPACE_LEFT, and the connection goes on', async (t) => {
  const store = new MemoryAfcStore(3 * MiB);
  const { client } = await serve(t, { store });
  const afc = await client();
  t.equal(await statusOf(afc.upload('/too-big', randomBytes(4 * MiB))), 'NO_SPACE_LEFT');
  t.ok(store.usedBytes <= 3 * MiB, `never past the budget (${store.usedBytes})`);
  await afc.removePath('/too-big');
  const small = randomBytes(MiB);
  await afc.upload('/fits', small);
  t.equal(sha256(await afc.download('/fits')), sha256(small));
});

t.test('replies as a phone lays them out, with packet_num echoed', async (t) => {
  const { connect } = await serve(t);
  const s = await connect();
  const STATUS = 1, DATA = 2, MAKE_DIR = 9, FILE_OPEN = 0x0d, FILE_OPEN_RES = 0x0e, FILE_WRITE = 0x10, FILE_READ = 0x0f, FILE_TELL = 0x12;
  const reply = (op: number, num: number | bigint, headerData: Buffer, payload = Buffer.alloc(0)) => packet(op, num, headerData, payload).toString('hex');

  s.write(packet(MAKE_DIR, 77, Buffer.from('/d\0')));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(STATUS, 77, le(0)), 'STATUS: this_length 48, the code in header data');
  s.write(packet(FILE_OPEN, 78, Buffer.concat([le(4), Buffer.from('/d/f\0')])));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(FILE_OPEN_RES, 78, le(1)), 'FILE_OPEN_RES: the handle in header data');
  // All arguments in header data (this_length == entire_length): accepted too.
  s.write(packet(FILE_WRITE, 79, Buffer.concat([le(1), Buffer.from('abc')])));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(STATUS, 79, le(0)), 'FILE_WRITE with its bytes in header data');
  s.write(packet(FILE_WRITE, 80, le(1), Buffer.from('def')));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(STATUS, 80, le(0)));
  s.write(packet(FILE_TELL, 81, le(1)));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(0x13, 81, le(6)), 'FILE_TELL_RES: the position in header data');
  s.write(packet(0x11, 82, le(1, 0, 0)));
  await readBytes(s, 48);
  s.write(packet(FILE_READ, 83, le(1, 100)));
  t.equal((await readBytes(s, 46)).toString('hex'), reply(DATA, 83, Buffer.alloc(0), Buffer.from('abcdef')), 'DATA: this_length 40, bytes as payload');
  s.write(packet(0x2a, 84, Buffer.alloc(0)));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(STATUS, 84, le(AfcStatus.OP_NOT_SUPPORTED)), 'an unknown opcode: OP_NOT_SUPPORTED');
  s.write(packet(FILE_READ, 85, le(1)));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(STATUS, 85, le(AfcStatus.INVALID_ARG)), 'a missing argument: INVALID_ARG');
  s.write(packet(0x04, 86, Buffer.from('/d/f\0')));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(STATUS, 86, le(AfcStatus.OP_NOT_SUPPORTED)), 'legacy READ_FILE');

  s.write(packet(MAKE_DIR, 2n ** 64n - 1n, Buffer.from('/d\0')));
  t.equal((await readBytes(s, 48)).toString('hex'), reply(STATUS, 2n ** 64n - 1n, le(0)), 'packet_num u64 max, echoed exactly');

  const last = await connect();
  last.end(packet(MAKE_DIR, 5, Buffer.from('/e\0')));
  t.equal((await readBytes(last, 48)).toString('hex'), reply(STATUS, 5, le(0)), 'a host that half-closes after its request still gets the reply');
  await closed(last);
});

t.test('FILE_WRITE bodies stream into the store before the packet ends', async (t) => {
  const store = new MemoryAfcStore();
  const { connect, client } = await serve(t, { store });
  const writer = await connect();
  writer.write(packet(0x0d, 0, Buffer.concat([le(3), Buffer.from('/big\0')])));
  await readBytes(writer, 48);
  // A 512 MiB FILE_WRITE announced; only the first 3 MiB sent.
  writer.write(packet(0x10, 1, le(1), Buffer.alloc(0), { entire: BigInt(48 + 512 * MiB), self: 48n }));
  writer.write(randomBytes(3 * MiB));
  const watcher = await client();
  await waitUntil(async () => (await watcher.getFileInfo('/big')).size === 3 * MiB, 'the first 3 MiB to reach the store');
  t.pass('3 MiB of a 512 MiB packet are already in the file');
  t.ok(store.usedBytes < 8 * MiB, `the rest was never reserved (${store.usedBytes} bytes held)`);
  writer.destroy();
  t.same(await watcher.readDirectory('/'), ['big'], 'the other connection is unaffected');
});

t.test('malformed packets close only their own connection', async (t) => {
  const { connect, client } = await serve(t);
  const healthy = await client();
  await healthy.upload('/keep', Buffer.from('kept'));
  const cases: Array<[string, Buffer]> = [
    ['bad magic', Buffer.concat([Buffer.from('CFA6LPAB'), le(40, 40, 0, 0x0b)])],
    ['this_length below 40', Buffer.concat([Buffer.from('CFA6LPAA'), le(48, 39, 0, 0x0b)])],
    ['entire_length below this_length', Buffer.concat([Buffer.from('CFA6LPAA'), le(48, 56, 0, 0x0b)])],
    ['a READ_DIR claiming 2^62 bytes', Buffer.concat([Buffer.from('CFA6LPAA'), le(2n ** 62n, 2n ** 62n, 0, 3)])],
    ['header data over 64 KiB', Buffer.concat([Buffer.from('CFA6LPAA'), le(40 + 65537, 40 + 65537, 0, 3)])],
    ['a FILE_WRITE of u64 max', Buffer.concat([Buffer.from('CFA6LPAA'), le(2n ** 64n - 1n, 48, 0, 0x10)])],
    ['a FILE_WRITE past 1 GiB', Buffer.concat([Buffer.from('CFA6LPAA'), le(48 + 2 ** 30 + 1, 48, 0, 0x10)])],
  ];
  for (const [what, bytes] of cases) {
    const s = await connect();
    s.write(bytes);
    await closed(s);
    t.pass(`${what}: closed`);
  }
  const half = await connect();
  half.end(packet(9, 0, Buffer.from('/half\0')).subarray(0, 45));
  await closed(half);
  t.pass('a peer that hangs up inside a packet');
  t.equal((await healthy.download('/keep')).toString(), 'kept', 'the healthy client still works');
  t.equal(await statusOf(healthy.getFileInfo('/half')), 'READ_ERROR', 'the cut packet did nothing');
});

t.test('directory-backed store: files on disk, jailed', async (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  writeFileSync(join(outside, 'secret'), 'secret');
  mkdirSync(join(root, 'DCIM'));
  symlinkSync(outside, join(root, 'DCIM', 'escape'));
  symlinkSync(join(outside, 'secret'), join(root, 'link-to-file'));
  const { client } = await serve(t, { root });
  const afc = await client();

  const payload = randomBytes(2 * MiB + 3);
  await afc.makeDirectory('/Downloads/a/b');
  await afc.upload('/Downloads/a/b/file.bin', payload);
  t.equal(sha256(readFileSync(join(root, 'Downloads/a/b/file.bin'))), sha256(payload), 'the file is on disk');
  t.equal(sha256(await afc.download('/Downloads/a/b/file.bin')), sha256(payload));
  t.match(await afc.getFileInfo('/Downloads/a/b/file.bin'), { type: 'S_IFREG', size: payload.length });
  t.match(await afc.getFileInfo('/Downloads'), { type: 'S_IFDIR' });
  t.same((await afc.readDirectory('/')).sort(), ['DCIM', 'Downloads', 'link-to-file']);
  await afc.renamePath('/Downloads/a/b/file.bin', '/moved.bin');
  t.equal(readFileSync(join(root, 'moved.bin')).length, payload.length, 'renamed on disk');

  t.equal(await statusOf(afc.readDirectory('/DCIM/escape')), 'PERM_DENIED', 'a directory symlink');
  t.equal(await statusOf(afc.getFileInfo('/DCIM/escape/secret')), 'PERM_DENIED', 'a path through it');
  t.equal(await statusOf(afc.open('/DCIM/escape/secret', 'r')), 'PERM_DENIED');
  t.equal(await statusOf(afc.open('/DCIM/escape/new', 'w')), 'PERM_DENIED', 'creating through it');
  t.equal(await statusOf(afc.open('/link-to-file', 'r')), 'PERM_DENIED', 'a file symlink');
  t.equal(await statusOf(afc.upload('/link-to-file', Buffer.from('x'))), 'PERM_DENIED');
  t.equal(await statusOf(afc.download('/../../etc/hostname')), 'PERM_DENIED', '".." above the root');
  t.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'secret', 'nothing outside was touched');
  t.equal(await statusOf(afc.getFileInfo('/nope')), 'READ_ERROR');
  t.equal(await statusOf(afc.removePath('/Downloads')), 'DIR_NOT_EMPTY');
  await afc.removePath('/Downloads', { recursive: true });
  t.same((await afc.readDirectory('/')).sort(), ['DCIM', 'link-to-file', 'moved.bin']);
  const info = await afc.getDeviceInfo();
  t.ok(info.totalBytes > 0 && info.freeBytes <= info.totalBytes, 'GET_DEVINFO from statfs');
});
