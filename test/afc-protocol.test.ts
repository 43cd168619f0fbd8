// The AFC codec on its own: the reference's byte vectors (§2.3.1) both ways,
// header validation against hostile lengths and bad magic, the NUL-list
// bodies, open modes, and the pull reader both ends are built on.
import t from 'tap';
import { PassThrough } from 'node:stream';

import { ByteReader } from '../src/afc/byte-reader.js';
import {
  AFC_HEADER_SIZE,
  AfcError,
  AfcFileMode,
  AfcOpcode,
  AfcStatus,
  afcOpcodeName,
  afcStatusName,
  decodeHeader,
  decodeKeyValues,
  decodeStrings,
  encodeHeader,
  encodeKeyValues,
  encodePacket,
  encodePath,
  encodeStrings,
  headerDataLength,
  MAX_HEADER_DATA,
  MAX_WRITE_PAYLOAD,
  openFlags,
  payloadLength,
  u64,
  type AfcLimits,
} from '../src/afc/protocol.js';

const hex = (parts: Buffer[]) => Buffer.concat(parts).toString('hex');

// One packet per line, from the reference (the STATUS line is a captured device reply).
const VECTORS: Array<{ what: string; hex: string; op: number; num: number; headerData: Buffer; payload: Buffer }> = [
  {
    what: 'STATUS ok (captured)',
    hex: '434641364c50414130000000000000003000000000000000000000000000000001000000000000000000000000000000',
    op: AfcOpcode.STATUS,
    num: 0,
    headerData: u64(0),
    payload: Buffer.alloc(0),
  },
  {
    what: 'FILE_OPEN "/bench.bin" w',
    hex: '434641364c5041413b000000000000003b0000000000000001000000000000000d0000000000000003000000000000002f62656e63682e62696e00',
    op: AfcOpcode.FILE_OPEN,
    num: 1,
    headerData: Buffer.concat([u64(AfcFileMode.WRONLY), encodePath('/bench.bin')]),
    payload: Buffer.alloc(0),
  },
  {
    what: 'FILE_OPEN_RES handle 1',
    hex: '434641364c5041413000000000000000300000000000000001000000000000000e000000000000000100000000000000',
    op: AfcOpcode.FILE_OPEN_RES,
    num: 1,
    headerData: u64(1),
    payload: Buffer.alloc(0),
  },
  {
    what: 'FILE_WRITE "hello"',
    hex: '434641364c5041413500000000000000300000000000000002000000000000001000000000000000010000000000000068656c6c6f',
    op: AfcOpcode.FILE_WRITE,
    num: 2,
    headerData: u64(1),
    payload: Buffer.from('hello'),
  },
  {
    what: 'FILE_READ 4 MiB',
    hex: '434641364c5041413800000000000000380000000000000003000000000000000f0000000000000001000000000000000000400000000000',
    op: AfcOpcode.FILE_READ,
    num: 3,
    headerData: u64(1, 4 * 1024 * 1024),
    payload: Buffer.alloc(0),
  },
  {
    what: 'DATA "hello"',
    hex: '434641364c5041412d0000000000000028000000000000000300000000000000020000000000000068656c6c6f',
    op: AfcOpcode.DATA,
    num: 3,
    headerData: Buffer.alloc(0),
    payload: Buffer.from('hello'),
  },
  {
    what: 'FILE_CLOSE',
    hex: '434641364c50414130000000000000003000000000000000040000000000000014000000000000000100000000000000',
    op: AfcOpcode.FILE_CLOSE,
    num: 4,
    headerData: u64(1),
    payload: Buffer.alloc(0),
  },
];

t.test('reference vectors encode byte for byte and decode back', async (t) => {
  for (const v of VECTORS) {
    t.equal(hex(encodePacket(v.op, v.num, v.headerData, v.payload)), v.hex, `encode ${v.what}`);
    const bytes = Buffer.from(v.hex, 'hex');
    const h = decodeHeader(bytes.subarray(0, AFC_HEADER_SIZE));
    t.same(
      { op: h.operation, num: Number(h.packetNum), hd: headerDataLength(h), pl: payloadLength(h), total: h.entireLength },
      { op: v.op, num: v.num, hd: v.headerData.length, pl: v.payload.length, total: bytes.length },
      `decode ${v.what}`,
    );
  }
});

t.test('encodePacket keeps a large payload as its own buffer (no copy)', async (t) => {
  const payload = Buffer.alloc(1024 * 1024, 7);
  const parts = encodePacket(AfcOpcode.FILE_WRITE, 9, u64(3), payload);
  t.equal(parts.length, 2);
  t.equal(parts[1], payload, 'the same Buffer object');
  t.equal(parts[0]!.length, 48);
});

t.test('decodeHeader rejects bad magic and inconsistent lengths', async (t) => {
  const good = encodeHeader({ entireLength: 48, thisLength: 48, packetNum: 1, operation: AfcOpcode.STATUS });
  const code = (fn: () => unknown): unknown => {
    try {
      fn();
      return 'no error';
    } catch (err) {
      return err instanceof AfcError ? err.code : err;
    }
  };
  const badMagic = Buffer.from(good);
  badMagic.write('CFA6LPAB', 0, 'latin1');
  t.equal(code(() => decodeHeader(badMagic)), 'ERR_AFC_BAD_MAGIC');
  t.equal(code(() => decodeHeader(Buffer.alloc(40))), 'ERR_AFC_BAD_MAGIC', 'all zeros');
  t.equal(code(() => decodeHeader(good.subarray(0, 39))), 'ERR_AFC_BAD_LENGTH', 'short header');
  const withLengths = (entire: bigint, self: bigint) => {
    const b = Buffer.from(good);
    b.writeBigUInt64LE(entire, 8);
    b.writeBigUInt64LE(self, 16);
    return b;
  };
  t.equal(code(() => decodeHeader(withLengths(48n, 39n))), 'ERR_AFC_BAD_LENGTH', 'this_length below 40');
  t.equal(code(() => decodeHeader(withLengths(0n, 0n))), 'ERR_AFC_BAD_LENGTH', 'zero lengths');
  t.equal(code(() => decodeHeader(withLengths(47n, 48n))), 'ERR_AFC_BAD_LENGTH', 'entire below this');
  t.equal(code(() => decodeHeader(withLengths(40n, 40n))), 'no error', 'a bare header is valid');

  const limits: AfcLimits = { maxBody: (op) => (op === AfcOpcode.FILE_WRITE ? 8 + MAX_WRITE_PAYLOAD : MAX_HEADER_DATA) };
  const hostile = (op: number, entire: bigint, self: bigint) => {
    const b = withLengths(entire, self);
    b.writeBigUInt64LE(BigInt(op), 32);
    return code(() => decodeHeader(b, limits));
  };
  const max = 2n ** 64n - 1n;
  t.equal(hostile(AfcOpcode.READ_DIR, max, max), 'ERR_AFC_TOO_LARGE', 'u64 max lengths');
  t.equal(hostile(AfcOpcode.READ_DIR, 2n ** 53n + 40n, 40n), 'ERR_AFC_TOO_LARGE', 'beyond exact doubles');
  t.equal(hostile(AfcOpcode.READ_DIR, 40n + 64n * 1024n + 1n, 40n + 64n * 1024n + 1n), 'ERR_AFC_TOO_LARGE', 'header data over 64 KiB');
  t.equal(hostile(AfcOpcode.READ_DIR, 40n + 64n * 1024n, 40n + 64n * 1024n), 'no error', 'exactly 64 KiB');
  t.equal(hostile(AfcOpcode.READ_DIR, 40n + 2n ** 20n, 40n), 'ERR_AFC_TOO_LARGE', 'a 1 MiB payload on a non-write op');
  t.equal(hostile(AfcOpcode.FILE_WRITE, 48n + 2n ** 30n, 48n), 'no error', 'FILE_WRITE of 1 GiB');
  t.equal(hostile(AfcOpcode.FILE_WRITE, 48n + 2n ** 30n + 1n, 48n), 'ERR_AFC_TOO_LARGE', 'FILE_WRITE past 1 GiB');
  t.equal(hostile(AfcOpcode.FILE_WRITE, max, 48n), 'ERR_AFC_TOO_LARGE', 'FILE_WRITE of u64 max');
});

t.test('NUL-separated bodies', async (t) => {
  t.same(decodeStrings(encodeStrings(['.', '..', 'DCIM', 'Downloads'])), ['.', '..', 'DCIM', 'Downloads']);
  t.same(decodeStrings(Buffer.from('a\0b')), ['a', 'b'], 'a missing final NUL is tolerated');
  t.same(decodeStrings(Buffer.alloc(0)), []);
  t.same(decodeStrings(Buffer.from('ünï\0', 'utf8')), ['ünï'], 'UTF-8');
  const kv = encodeKeyValues({ st_size: 5, st_ifmt: 'S_IFREG', st_mtime: 1_700_000_000_000_000_000n });
  t.equal(kv.toString('latin1'), 'st_size\x005\x00st_ifmt\x00S_IFREG\x00st_mtime\x001700000000000000000\x00');
  t.same(decodeKeyValues(kv), { st_size: '5', st_ifmt: 'S_IFREG', st_mtime: '1700000000000000000' });
  t.same(decodeKeyValues(Buffer.from('k\0v\0dangling\0')), { k: 'v' }, 'an odd trailing key is dropped');
  t.equal(encodePath('/a').toString('hex'), '2f6100');
});

t.test('open modes, names, AfcError', async (t) => {
  t.same(openFlags(AfcFileMode.RDONLY), { read: true, write: false, create: false, truncate: false, append: false });
  t.same(openFlags(AfcFileMode.WRONLY), { read: false, write: true, create: true, truncate: true, append: false });
  t.same(openFlags(AfcFileMode.RDAPPEND), { read: true, write: true, create: true, truncate: false, append: true });
  t.equal(openFlags(0), undefined);
  t.equal(openFlags(7), undefined);
  t.equal(afcStatusName(8), 'OBJECT_NOT_FOUND');
  t.equal(afcStatusName(99), 'AFC_STATUS_99');
  t.equal(afcOpcodeName(0x10), 'FILE_WRITE');
  const e = new AfcError(AfcStatus.OBJECT_EXISTS);
  t.ok(e instanceof Error);
  t.equal(e.message, 'OBJECT_EXISTS');
  t.ok(e.is('OBJECT_EXISTS'));
  t.notOk(e.is('OBJECT_NOT_FOUND'));
  t.equal(new AfcError('ERR_AFC_BAD_MAGIC', 'x').code, 'ERR_AFC_BAD_MAGIC');
});

t.test('ByteReader: exact reads across chunks, clean and unclean ends, pausing', async (t) => {
  const stream = new PassThrough();
  const reader = new ByteReader(stream, 16);
  stream.write(Buffer.from('abc'));
  stream.write(Buffer.from('defgh'));
  t.equal((await reader.readExactly(4))!.toString(), 'abcd', 'spans two chunks');
  t.equal((await reader.readSome(100)).toString(), 'efgh', 'readSome takes what is there');
  const later = reader.readExactly(3);
  stream.write(Buffer.from('ij'));
  stream.write(Buffer.from('k'));
  t.equal((await later)!.toString(), 'ijk', 'waits for the rest');
  stream.write(Buffer.alloc(40));
  t.ok(stream.isPaused(), 'paused above the high-water mark');
  t.equal((await reader.readExactly(40))!.length, 40, 'a read larger than the mark still completes');
  t.notOk(stream.isPaused(), 'resumed once drained');
  stream.write(Buffer.from('xy'));
  stream.end();
  await t.rejects(reader.readExactly(3), { code: 'ERR_AFC_CLOSED' }, 'ending part-way is an error');

  const clean = new PassThrough();
  const r2 = new ByteReader(clean);
  clean.end();
  t.equal(await r2.readExactly(40), null, 'ending between packets is null');
  t.same(await r2.readExactly(0), Buffer.alloc(0));
  await t.rejects(r2.readSome(1), { code: 'ERR_AFC_CLOSED' });
});
