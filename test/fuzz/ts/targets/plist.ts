// Plist bodies (src/protocol/plist-codec.ts): XML through xmldom and
// bplist00 through bplist-parser, normalised to one shape. Beyond "a value
// or a PlistError", a value read must survive the trip the daemon gives pair
// records: written back as XML (toXml) and read again, it reads the same.
import { parsePlist, PlistError, toXml, type PlistValue } from '../../../../src/protocol/plist-codec.js';
import { canon, Mismatch, shape, type Field, type Target } from '../target.js';

const tok = (s: string) => Buffer.from(s, 'latin1');

export const PLIST_TOKENS: Buffer[] = [
  '<dict>', '</dict>', '<dict/>', '<key>', '</key>', '<key/>', '<string>', '</string>', '<string/>', '<integer>', '</integer>',
  '<real>', '</real>', '<true/>', '<false/>', '<data>', '</data>', '<date>', '</date>', '<array>', '</array>', '<array/>',
  '<plist version="1.0">', '</plist>', '<?xml version="1.0" encoding="UTF-8"?>', '<!DOCTYPE plist>', '<!ENTITY x "y">', '&x;',
  '<![CDATA[', ']]>', '<!--', '-->', '&amp;', '&lt;', '&#0;', '&#x10FFFF;', '&#xD;', '&#65;', '__proto__', 'constructor',
  '-9223372036854775808', '18446744073709551615', '340282366920938463463374607431768211456', '9007199254740993', '0x7fffffff', '-0',
  'NaN', 'inf', '1e309', '2024-02-30T25:61:61Z', '0000-01-01T00:00:00Z', 'AAAA', '====', '\r', '\r\n', '\t', '\u00ff', '\xc3', '\xef\xbb\xbf', '\x00',
  'bplist00',
].map(tok);

/** bplist00 markers: an int, a real, a date, data/string/array/dict with a 4-bit or extended count, a UID. */
const BPLIST_TOKENS: Buffer[] = [
  [0x00], [0x08], [0x09], [0x10], [0x13], [0x14], [0x22], [0x23], [0x33], [0x4f, 0x10], [0x5f, 0x13], [0x6f, 0x12], [0x80], [0x8f],
  [0xaf, 0x10], [0xdf, 0x10], [0xd1], [0xa1], [0x1f], [0xff],
].map((b) => Buffer.from(b));

/** The bplist trailer: offset size, ref size, object count, top object, offset table offset. */
function fields(input: Buffer): Field[] {
  if (input.length < 40 || !input.subarray(0, 8).equals(tok('bplist00'))) return [];
  const t = input.length - 32;
  return [
    { offset: t + 6, width: 1, endian: 'be' },
    { offset: t + 7, width: 1, endian: 'be' },
    { offset: t + 8, width: 8, endian: 'be' },
    { offset: t + 16, width: 8, endian: 'be' },
    { offset: t + 24, width: 8, endian: 'be' },
    // the first object's marker and what follows it
    { offset: 8, width: 1, endian: 'be' },
    { offset: 9, width: 1, endian: 'be' },
  ];
}

/** Reads, then checks the XML round trip of what was read. */
export function parseAndRoundTrip(body: Buffer): PlistValue {
  const value = parsePlist(body);
  let xml: string;
  try {
    xml = toXml(value);
  } catch (err) {
    // Some values have no XML form (C0 controls in a string); saying so is the contract.
    if (err instanceof PlistError) return value;
    throw err;
  }
  let again: PlistValue;
  try {
    again = parsePlist(Buffer.from(xml, 'utf8'));
  } catch (err) {
    throw new Mismatch(`toXml wrote XML that parsePlist rejects: ${(err as Error).message}`);
  }
  if (comparable(again) !== comparable(value)) throw new Mismatch('a value written with toXml reads back different');
  return value;
}

// What XML cannot tell apart is not a bug: dates carry whole seconds, -0 is
// written as 0, and an integral double past 2^53 is written as its digits
// and so reads back as the bigint of the same value (the codec's rule for
// integers that large).
function comparable(v: PlistValue): string {
  const fold = (x: unknown): unknown => {
    if (typeof x === 'number') return Object.is(x, -0) ? 0 : Number.isInteger(x) && !Number.isSafeInteger(x) ? BigInt(x) : x;
    if (x instanceof Date) return new Date(Math.floor(x.getTime() / 1000) * 1000);
    if (Array.isArray(x)) return x.map(fold);
    if (x && typeof x === 'object' && !(x instanceof Uint8Array)) return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, fold(y)]));
    return x;
  };
  return canon(fold(v));
}

export const plistTarget: Target = {
  name: 'plist',
  errors: [PlistError],
  run: (input) => shape(parseAndRoundTrip(input)),
  fields,
  dictionary: [...PLIST_TOKENS, ...BPLIST_TOKENS],
  maxLength: 16384,
};
