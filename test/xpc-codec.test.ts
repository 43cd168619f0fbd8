// The XPC codec (src/xpc): the reference's byte vectors both ways, every
// object type round-tripping exactly, typed errors for bad input without
// huge allocations, and a seeded mutational fuzz loop whose findings are
// pinned below as fixed vectors.
import t from 'tap';

import { XpcError } from '../src/xpc/errors.js';
import { decodeMessage, encodeMessage, MessageAssembler, topLevelOffsets, type XpcMessage } from '../src/xpc/message.js';
import { decodeObject, encodeObject } from '../src/xpc/object-codec.js';
import {
  dict,
  int64,
  uint64,
  Uuid,
  XpcDate,
  XpcEndpoint,
  XpcFd,
  XpcFileTransfer,
  type XpcValue,
} from '../src/xpc/values.js';
import { mutate, seededRandom } from './helpers/seeded-random.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Reference §3.1.3 test vectors.
const EMPTY_DICT = hex('920bb029 01000000 1400000000000000 0000000000000000 42371342 05000000 00f00000 04000000 00000000');
const INIT_HANDSHAKE = hex('920bb0290100400000000000000000000000000000000000');
const HANDSHAKE_201 = hex('920bb0290102000000000000000000000000000000000000');

t.test('the reference vectors decode and re-encode byte for byte', async (t) => {
  const empty = decodeMessage(EMPTY_DICT);
  t.equal(empty.flags, 1);
  t.equal(empty.messageId, 0n);
  t.strictSame(empty.body, new Map());
  t.same(encodeMessage(empty), EMPTY_DICT, 'empty dictionary, 44 bytes');
  t.equal(EMPTY_DICT.length, 44);
  t.same(encodeMessage({ flags: 0x00400001, messageId: 0n }), INIT_HANDSHAKE, 'INIT_HANDSHAKE header-only');
  t.same(encodeMessage({ flags: 0x00000201, messageId: 0n }), HANDSHAKE_201, '"0x201" header-only');
  for (const v of [INIT_HANDSHAKE, HANDSHAKE_201]) {
    const m = decodeMessage(v);
    t.equal(m.body, undefined, 'header-only has no body');
    t.same(encodeMessage(m), v);
  }
  // Captured array: length 64 (count included), 5 uint64 entries.
  const array = encodeObject([1, 0, 0, 0, 0].map((n) => uint64(n)));
  t.same(array.subarray(0, 12), hex('00e00000 40000000 05000000'));
  t.equal(array.length, 4 + 64 + 4);
  t.same(encodeObject(new Map()), hex('00f00000 04000000 00000000'), 'empty dict payload');
});

t.test('each object type has its wire form', async (t) => {
  t.same(encodeObject(null), hex('00100000'));
  t.same(encodeObject(true), hex('00200000 01000000'));
  t.same(encodeObject(false), hex('00200000 00000000'));
  t.same(encodeObject(int64(-2)), hex('00300000 feffffffffffffff'));
  t.same(encodeObject(uint64(0xffffffffffffffffn)), hex('00400000 ffffffffffffffff'));
  t.same(encodeObject(1.5), hex('00500000 000000000000f83f'));
  t.same(encodeObject(new XpcDate(1_000_000_000n)), hex('00700000 00ca9a3b00000000'), 'date: nanoseconds');
  t.same(encodeObject(Buffer.from([1, 2, 3, 4, 5])), hex('00800000 05000000 0102030405000000'), 'data padded to 4');
  t.same(encodeObject('abc'), hex('00900000 04000000 61626300'), 'string length counts the NUL');
  t.same(encodeObject('abcd'), hex('00900000 05000000 6162636400000000'));
  t.same(encodeObject(new Uuid(Buffer.alloc(16, 0xab))), Buffer.concat([hex('00a00000'), Buffer.alloc(16, 0xab)]));
  t.same(encodeObject(new XpcFd(7)), hex('00b00000 07000000'));
  t.same(encodeObject(new XpcEndpoint()), hex('00200100'));
  t.same(encodeObject(dict({ k: null })), hex('00f00000 0c000000 01000000 6b000000 00100000'), 'key padded to 4');
  t.same(
    encodeObject(new XpcFileTransfer(5n, dict({ s: uint64(10) }))),
    hex('00a00100 0500000000000000 00f00000 14000000 01000000 73000000 00400000 0a00000000000000'),
  );
});

const everything = (): Map<string, XpcValue> =>
  dict({
    null: null,
    yes: true,
    no: false,
    i: int64(-(1n << 63n)),
    u: uint64((1n << 64n) - 1n),
    d: -0.25,
    date: XpcDate.fromDate(new Date('2024-05-01T12:00:00Z')),
    data: Buffer.from('xyz'),
    empty: Buffer.alloc(0),
    s: 'héllo wörld',
    es: '',
    uuid: Uuid.parse('5C7E4A11-7D6B-4CF2-9F0E-0123456789AB'),
    fd: new XpcFd(3),
    ep: new XpcEndpoint(),
    ft: new XpcFileTransfer(9n, dict({ s: uint64(1234) })),
    list: [int64(1), 'two', [null, dict({})], new Map([['deep', [true]]])],
    nested: dict({ a: dict({ b: dict({ c: 'd' }) }) }),
  });

t.test('decode(encode(x)) is x and encode(decode(bytes)) is bytes', async (t) => {
  const message: XpcMessage = { flags: 0x00010101, messageId: 42n, body: everything() };
  const bytes = encodeMessage(message);
  const decoded = decodeMessage(bytes);
  t.strictSame(decoded, message);
  t.same(encodeMessage(decoded), bytes);
  t.strictSame(decodeObject(encodeObject(everything())), everything());
  t.equal(bytes.length % 4, 0, 'messages stay 4-byte aligned');
});

t.test('decoding parses arrays by count, as go-ios writes lengths without it', async (t) => {
  const ours = encodeObject([uint64(1), uint64(2)]);
  const goios = Buffer.from(ours);
  goios.writeUInt32LE(ours.readUInt32LE(4) - 4, 4);
  t.strictSame(decodeObject(goios), [uint64(1), uint64(2)]);
});

t.test('top-level offsets locate a value for patching', async (t) => {
  const bytes = encodeMessage({ flags: 0x101, messageId: 1n, body: dict({ MessageType: 'Handshake', UUID: new Uuid(Buffer.alloc(16, 7)) }) });
  const at = topLevelOffsets(bytes).get('UUID')!;
  t.equal(bytes.readUInt32LE(at), 0xa000);
  t.same(bytes.subarray(at + 4, at + 20), Buffer.alloc(16, 7));
});

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof XpcError)) throw err;
    return err.code;
  }
}

t.test('bad input gives typed errors', async (t) => {
  const good = encodeMessage({ flags: 0x101, messageId: 1n, body: dict({ key: 'value', list: [int64(1)] }) });
  t.equal(code(() => decodeMessage(good.subarray(0, good.length - 4))), 'EXPCTRUNCATED', 'truncated body');
  t.equal(code(() => decodeMessage(good.subarray(0, 10))), 'EXPCTRUNCATED', 'truncated header');
  t.equal(code(() => decodeMessage(Buffer.concat([good, Buffer.alloc(4)]))), 'EXPCTRAILING', 'bytes after the message');
  const badMagic = Buffer.from(good);
  badMagic[0] = 0;
  t.equal(code(() => decodeMessage(badMagic)), 'EXPCMAGIC');
  const badPayloadMagic = Buffer.from(good);
  badPayloadMagic[24] = 0;
  t.equal(code(() => decodeMessage(badPayloadMagic)), 'EXPCMAGIC');
  t.equal(code(() => decodeObject(hex('00600000'))), 'EXPCTYPE', 'pointer is not sent remotely');
  t.equal(code(() => decodeObject(hex('12345678'))), 'EXPCTYPE', 'unknown type');
  t.equal(code(() => decodeObject(hex('00900000 40000000 6162'))), 'EXPCLENGTH', 'string size past the end');
  t.equal(code(() => decodeObject(hex('00900000 00000000'))), 'EXPCLENGTH', 'string without its NUL');
  t.equal(code(() => decodeObject(hex('00900000 04000000 61626364'))), 'EXPCVALUE', 'string not NUL-terminated');
  t.equal(code(() => decodeObject(hex('00f00000 ff000000 01000000'))), 'EXPCLENGTH', 'dict size past the end');
  t.equal(code(() => decodeObject(hex('00e00000 08000000 ffffff7f 00100000'))), 'EXPCLENGTH', 'absurd count');
  t.equal(code(() => decodeObject(hex('00f00000 08000000 01000000 6b6b6b6b'))), 'EXPCTRUNCATED', 'key without NUL');
  t.equal(code(() => decodeMessage(encodeMessage({ flags: 1, messageId: 0n }).fill(0xff, 8, 16))), 'EXPCLENGTH', 'u64 body length');
  t.equal(code(() => encodeObject('a\0b')), 'EXPCVALUE');
  t.equal(code(() => uint64(-1)), 'EXPCVALUE');
});

t.test('nesting deeper than 64 is refused both ways', async (t) => {
  let v: XpcValue = [];
  for (let i = 1; i < 64; i++) v = [v];
  t.doesNotThrow(() => decodeObject(encodeObject(v)), '64 levels are fine');
  t.equal(code(() => encodeObject([v])), 'EXPCDEPTH');
  // 65 nested empty arrays, written by hand.
  const parts: Buffer[] = [];
  for (let i = 0; i < 65; i++) {
    const inner = 4 + (64 - i) * 12;
    parts.push(hex('00e00000'), Buffer.from(Uint32Array.of(inner).buffer), Buffer.from(Uint32Array.of(i === 64 ? 0 : 1).buffer));
  }
  t.equal(code(() => decodeObject(Buffer.concat(parts))), 'EXPCDEPTH');
});

t.test('a 2 GiB length allocates nothing huge', async (t) => {
  const before = process.memoryUsage().arrayBuffers;
  const data = hex('00800000 00000080 00000000');
  t.equal(code(() => decodeObject(data)), 'EXPCLENGTH', 'data of 2 GiB');
  const header = encodeMessage({ flags: 1, messageId: 0n });
  header.writeBigUInt64LE(2n ** 31n, 8);
  t.equal(code(() => decodeMessage(header)), 'EXPCLENGTH', 'message body of 2 GiB');
  const assembler = new MessageAssembler();
  t.equal(code(() => assembler.push(header)), 'EXPCLENGTH', 'the stream assembler fails on the header');
  t.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024, 'no large buffer was made');
});

t.test('the assembler splits and joins messages across chunks', async (t) => {
  const a = encodeMessage({ flags: 1, messageId: 0n, body: new Map() });
  const b = encodeMessage({ flags: 0x00400001, messageId: 0n });
  const c = encodeMessage({ flags: 0x101, messageId: 1n, body: everything() });
  const stream = Buffer.concat([a, b, c]);
  for (const size of [1, 3, 7, 24, 44, 1000]) {
    const asm = new MessageAssembler();
    const out: Buffer[] = [];
    for (let at = 0; at < stream.length; at += size) out.push(...asm.push(stream.subarray(at, at + size)));
    t.same(out, [a, b, c], `chunks of ${size}`);
    t.equal(asm.bufferedBytes, 0);
  }
});

// Found by the fuzz loop below (seed 0x5eed) and pinned here.
// Case 2041: a dictionary's type code turned into a string's, so the string
// held inner NULs; it decoded, and then could not be encoded back.
const FUZZ_FINDINGS: Array<{ name: string; bytes: string; code: string }> = [
  {
    name: 'a string with inner NULs (the whole case)',
    bytes: '920bb02901010000dc010000000000000700000000000000423713420500000000f00000cc010000110000006e756c6c00000000001000007965730000200000010000006e6f00000020000000000000690000000030000000000000000000807500000000400000ffffffffffffffff6400000000500000000000000000d0bf646174650000000000700000008063f8995bcb176461746100000000008000000300000078797a00656d707479000000008000000000000073000000009000000e00000068c3a96c6c6f2077c3b6726c6400000065730000009000000100000000000000757569640000000000a000005c7e4a117d6b4cf29f0e0123456789ab6664000000b000000300000065700000002001006674000000a00100090000000000000000f0000014000000010000007300000000400000d2040000000000006c6973740000000000e000006000000004000000003000000100000000000000009000000400000074776f0000e0000014000000020000000010000000f000000400000000000000009000002000000001000000646565700000000000e000000c0000000100000000200000010000006e6573746564000000f0000034000000010000006100000000f0000024000000010000006200000000f00000140000000100000063000000009000000200000064000000',
    code: 'EXPCVALUE',
  },
  {
    name: 'a string with inner NULs (reduced)',
    bytes: '920bb029 01010000 24000000 00000000 00000000 00000000 42371342 05000000 00f00000 14000000 01000000 73000000 00900000 04000000 61006200',
    code: 'EXPCVALUE',
  },
];

t.test('fuzz findings stay fixed', async (t) => {
  for (const f of FUZZ_FINDINGS) t.equal(code(() => decodeMessage(hex(f.bytes))), f.code, f.name);
});

t.test('seeded mutational fuzz: only XpcErrors, and whatever decodes re-encodes stably', async (t) => {
  const rnd = seededRandom(0x5eed);
  const seeds = [EMPTY_DICT, INIT_HANDSHAKE, HANDSHAKE_201, encodeMessage({ flags: 0x101, messageId: 7n, body: everything() })];
  let decoded = 0;
  let rejected = 0;
  const codes = new Set<string>();
  for (let i = 0; i < 20000; i++) {
    let input = rnd.pick(seeds);
    for (let n = 1 + rnd.int(3); n > 0; n--) input = mutate(input, rnd);
    let message: XpcMessage;
    try {
      message = decodeMessage(input);
    } catch (err) {
      if (!(err instanceof XpcError)) {
        t.fail(`case ${i}: ${(err as Error).name}: ${(err as Error).message} for ${input.toString('hex')}`);
        return;
      }
      codes.add(err.code);
      rejected++;
      continue;
    }
    decoded++;
    try {
      const again = encodeMessage(message);
      if (!encodeMessage(decodeMessage(again)).equals(again)) throw new Error('unstable re-encoding');
    } catch (err) {
      t.fail(`case ${i}: ${(err as Error).message} for ${input.toString('hex')}`);
      return;
    }
  }
  t.ok(decoded > 100 && rejected > 1000, `${decoded} decoded, ${rejected} rejected (${[...codes].sort().join(' ')})`);
});
