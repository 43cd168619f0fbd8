// bplist-parser builds dicts with `dict[key] = value`, so a `__proto__` key
// sets the dict's prototype. parsePlist must refuse such a dict with a
// PlistError whatever the value is. The TypeScript fuzzer found a dict whose
// `__proto__` held <data>: it passed for a Buffer and then threw a TypeError.
import t from 'tap';

import { parsePlist, PlistError } from '../src/protocol/plist-codec.js';

/** A bplist00 holding { "__proto__": value }, with one-byte offsets and refs. */
function protoDict(valueObject: Buffer): Buffer {
  const dict = Buffer.from([0xd1, 0x01, 0x02]);
  const key = Buffer.concat([Buffer.from([0x59]), Buffer.from('__proto__', 'ascii')]);
  const objects = [dict, key, valueObject];
  const header = Buffer.from('bplist00', 'ascii');
  const offsets: number[] = [];
  let at = header.length;
  for (const o of objects) {
    offsets.push(at);
    at += o.length;
  }
  const trailer = Buffer.alloc(32);
  trailer[6] = 1; // offset size
  trailer[7] = 1; // ref size
  trailer.writeBigUInt64BE(BigInt(objects.length), 8);
  trailer.writeBigUInt64BE(0n, 16); // top object
  trailer.writeBigUInt64BE(BigInt(at), 24); // offset table
  return Buffer.concat([header, ...objects, Buffer.from(offsets), trailer]);
}

const VALUES: Array<[string, Buffer]> = [
  ['data', Buffer.from([0x43, 1, 2, 3])],
  ['a date', Buffer.concat([Buffer.from([0x33]), Buffer.alloc(8)])],
  ['a UID', Buffer.from([0x80, 0x07])],
  ['an array', Buffer.from([0xa0])],
];

t.test('a bplist dict with a __proto__ key is a PlistError, whatever its value', async (t) => {
  for (const [name, value] of VALUES) {
    t.throws(() => parsePlist(protoDict(value)), PlistError, `__proto__ holding ${name}`);
  }
  // Assigning a string to __proto__ does nothing, so the key is simply lost.
  t.same(parsePlist(protoDict(Buffer.from([0x51, 0x78]))), {}, '__proto__ holding a string: an empty dict');
});

t.test('the same layout with an ordinary key reads', async (t) => {
  const body = protoDict(Buffer.from([0x43, 1, 2, 3]));
  body.write('__other__', 12, 'ascii'); // after the header, the dict and the key's marker
  t.same(parsePlist(body), { __other__: Buffer.from([1, 2, 3]) });
});
