// One plist codec for pair records and for usbmuxd message bodies. Input may
// be XML or `bplist00` (usbmuxd itself parses only XML requests, but
// libimobiledevice saves pair records as binary); output is always XML, as
// usbmuxd replies and stores records in XML.
//
// Both parsers' results are normalised to one shape, so a value reads the
// same whichever encoding carried it: integers within ±(2^53-1) are numbers
// and larger ones bigints, data is a Buffer, and null (which XML cannot
// carry and the XML writer would silently drop) is removed.
import * as bplist from 'bplist-parser';
import { randomUUID } from 'node:crypto';
import { types } from 'node:util';

import { bplistStructureProblem } from './bplist-guard.js';
import { writeXmlPlist } from './plist-xml-writer.js';

// XML is read by the plist package's parse(), loaded from its own module:
// the package's index also loads build() and with it xmlbuilder, 34 files
// that toXml no longer needs (plist-xml-writer.ts) and every daemon and sim
// start would read. The package's exports map names only its index, so the
// module is found beside it; should a later version move it, the index is
// loaded instead (the same parser, a slower start).
const parseXmlDocument: (xml: string) => unknown = await (async () => {
  try {
    const own = (await import(new URL('./parse.js', import.meta.resolve('plist')).href)) as { parse?: unknown };
    if (typeof own.parse === 'function') return own.parse as (xml: string) => unknown;
  } catch {
    // moved or renamed: the index below
  }
  return (await import('plist')).parse;
})();

export type PlistValue = string | number | bigint | boolean | Date | Uint8Array | PlistValue[] | PlistDict;

export interface PlistDict {
  [key: string]: PlistValue;
}

export class PlistError extends Error {
  readonly code = 'EPLIST';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PlistError';
  }
}

/** A dict, as opposed to the other object-shaped values (array, date, data). */
export function isPlistDict(value: unknown): value is PlistDict {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Date) &&
    !(value instanceof Uint8Array)
  );
}

const BPLIST_MAGIC = Buffer.from('bplist00', 'latin1');
// Far beyond anything usbmuxd or lockdown sends; it turns a recursion bomb
// into a PlistError instead of a RangeError from deep inside a parser.
const MAX_DEPTH = 128;

export interface ParseOptions {
  /**
   * At most this many nodes (XML elements, keys included; bplist values),
   * checked before the parser runs. XML costs 1–5 µs per node (9,335 nodes:
   * 9.5 ms quiet, 48 ms on a loaded machine), so a sender that may not make
   * us spend that on one 64 KiB message (a usbmuxd client) gets a bound far
   * above any real request.
   */
  maxNodes?: number;
}

export function parsePlist(bytes: Buffer | Uint8Array, options: ParseOptions = {}): PlistValue {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let raw: unknown;
  let marker: string | undefined;
  if (buf.length >= 8 && buf.subarray(0, 8).equals(BPLIST_MAGIC)) {
    const problem = bplistStructureProblem(buf, MAX_DEPTH, options.maxNodes);
    if (problem) throw new PlistError(`unparsable binary plist: ${problem}`);
    raw = quietly('binary plist', () => bplist.parseBuffer(buf)[0]);
  } else {
    const text = buf.toString('utf8').replace(/^\uFEFF/, '');
    // plist.parse would also take OpenStep text and other bplist versions;
    // neither is a format usbmuxd accepts, so only XML gets through.
    if (!text.trimStart().startsWith('<')) throw new PlistError('not an XML or bplist00 plist');
    checkXmlShape(text, options.maxNodes ?? Number.POSITIVE_INFINITY);
    const tagged = tagIntegers(text);
    marker = tagged.marker;
    raw = quietly('XML plist', () => parseXmlDocument(tagged.text));
  }
  const value = normalise(raw, marker, 0);
  if (value === undefined) throw new PlistError('plist has no value');
  return value;
}

export function toXml(value: PlistValue): string {
  const encodable = checkEncodable(value, 0);
  try {
    // Tabs and a final newline make the output byte-for-byte the shape
    // libplist writes, which is what usbmuxd clients have always seen.
    return writeXmlPlist(encodable) + '\n';
  } catch (err) {
    // Characters XML 1.0 cannot carry (most C0 controls).
    throw new PlistError(`cannot encode as XML plist: ${(err as Error).message}`, { cause: err });
  }
}

// plist.parse reads <integer> with parseInt, which silently rounds anything
// past 2^53 (a pair record's or a lockdown reply's 64-bit values). Rewriting
// each integer as a string that carries a per-call random marker lets the
// parser keep doing the XML work while the digits reach normalise() intact.
// Comments and CDATA are matched first and left alone so that text which
// merely looks like an integer element is never rewritten.
function tagIntegers(text: string): { text: string; marker: string } {
  let marker = `\u{E000}tsmuxd-int-${randomUUID()}:`;
  while (text.includes(marker)) marker = `\u{E000}tsmuxd-int-${randomUUID()}:`;
  const re = /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<integer\s*>([^<]*)<\/integer\s*>/g;
  const out = text.replace(re, (whole, digits: string | undefined) =>
    digits === undefined ? whole : `<string>${marker}${digits}</string>`,
  );
  return { text: out, marker };
}

// xmldom and plist.parse both recurse per element, and deep nesting is slow
// long before the stack runs out: 1,000 nested <array>s (15 KB) took over
// 100 ms, 20,000 (300 KB, well inside a lockdown frame) 2.7 s before a
// stack overflow. One linear pass over the tags turns that away first, and
// counts the elements against maxNodes. Comments, CDATA and processing
// instructions are skipped like the parser skips them; the counts only have
// to be upper bounds of the real ones.
function checkXmlShape(text: string, maxNodes: number): void {
  const re = /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<[?!][^>]*>|<(\/?)[^\s/>]+[^>]*?(\/?)>/g;
  let depth = 0;
  let elements = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] === undefined) continue;
    if (m[1] === '/') {
      depth--;
      continue;
    }
    // <plist> itself is not a node of the value.
    if (++elements > maxNodes + 1) throw new PlistError(`plist has more than ${maxNodes} elements`);
    if (m[2] !== '/' && ++depth > MAX_DEPTH + 2) throw new PlistError('plist nested too deeply');
  }
}

function parseInteger(text: string): number | bigint {
  // Decimal, or 0x-hex as Python's plistlib and CoreFoundation also accept.
  const m = /^\s*([+-]?)(?:0[xX]([0-9A-Fa-f]+)|([0-9]+))\s*$/.exec(text);
  if (!m) throw new PlistError(`invalid <integer> ${JSON.stringify(text.slice(0, 40))}`);
  const magnitude = m[2] !== undefined ? BigInt(`0x${m[2]}`) : BigInt(m[3]!);
  return simplify(m[1] === '-' ? -magnitude : magnitude);
}

function simplify(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

// xmldom reports problems (with client-supplied text in the message) on
// console.error unless given a handler, and plist.parse gives it none;
// bplist-parser does the same for malformed length markers. Parsing is
// synchronous, so swapping console.error for the duration captures exactly
// these reports without losing anyone else's output. Warnings are tolerated;
// errors fail the parse, because xmldom otherwise recovers from them by
// guessing (an unknown entity left as text, trailing junk ignored). The
// first error ends the parse there and then (the throw leaves xmldom): after
// a broken root xmldom reports every later tag, and collecting the reports
// was quadratic, 1.4 s of event loop for one 64 KiB usbmuxd request (found
// by the TypeScript fuzzer).
function quietly<T>(what: string, parse: () => T): T {
  const saved = console.error;
  let fault: string | undefined;
  console.error = (...args: unknown[]) => {
    const report = args.map(String).join(' ');
    if (report.startsWith('[xmldom warning]')) return;
    fault ??= report;
    throw new PlistError(`unparsable ${what}: ${firstLine(fault)}`);
  };
  try {
    const result = parse();
    // A parser that caught the throw and went on still failed.
    if (fault !== undefined) throw new PlistError(`unparsable ${what}: ${firstLine(fault)}`);
    return result;
  } catch (err) {
    if (err instanceof PlistError) throw err;
    const first = fault ?? err;
    throw new PlistError(`unparsable ${what}: ${firstLine(first)}`, { cause: err });
  } finally {
    console.error = saved;
  }
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n', 1)[0]!.trim().slice(0, 200);
}

function normalise(v: unknown, marker: string | undefined, depth: number): PlistValue | undefined {
  if (depth > MAX_DEPTH) throw new PlistError('plist nested too deeply');
  switch (typeof v) {
    case 'string':
      return marker !== undefined && v.startsWith(marker) ? parseInteger(v.slice(marker.length)) : v;
    case 'number':
    case 'boolean':
      return v;
    case 'bigint':
      return simplify(v);
    case 'undefined':
      return undefined;
    case 'object':
      break;
    default:
      throw new PlistError(`unexpected ${typeof v} in parsed plist`);
  }
  if (v === null) return undefined;
  // Internal-slot checks, not instanceof: a bplist dict with a `__proto__`
  // key whose value is a <data> or <date> is a plain object whose prototype
  // is a Buffer or Date, and instanceof would take it for one (its getters
  // then throw TypeErrors instead of a PlistError).
  if (types.isDate(v)) {
    if (Number.isNaN(v.getTime())) throw new PlistError('invalid <date>');
    return v;
  }
  if (types.isUint8Array(v)) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) {
    const out: PlistValue[] = [];
    for (const item of v) {
      const n = normalise(item, marker, depth + 1);
      if (n !== undefined) out.push(n);
    }
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  // A keyed-archiver UID has no XML form; CoreFoundation writes it as a
  // one-key dict, and so do we.
  if (proto === bplist.UID.prototype) return { UID: (v as InstanceType<typeof bplist.UID>).UID };
  // bplist-parser assigns keys with `dict[key] = …`, so a `__proto__` key
  // replaces the object's prototype instead of becoming a key.
  if (proto !== Object.prototype && proto !== null) throw new PlistError('plist dict has a __proto__ key');
  const out: PlistDict = {};
  for (const [key, item] of Object.entries(v)) {
    if (key === '__proto__') throw new PlistError('plist dict has a __proto__ key');
    const n = normalise(item, marker, depth + 1);
    if (n !== undefined) out[key] = n;
  }
  return out;
}

// The XML writer, like plist.build before it, skips null without a word, and
// for a function or symbol in a dict writes a <key> with no value; a reply
// missing a key is a protocol bug better caught here than by a client. It
// also writes any integral number as <integer> with toString(), which for
// 1e21 and up is "1e+21", an integer nobody can read back (a bplist real or
// a 16-byte UID gives such numbers): those become bigints, written digit by
// digit. Returns the value to build, copied only where a number had to change.
function checkEncodable(v: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new PlistError('value nested too deeply (or cyclic) for a plist');
  switch (typeof v) {
    case 'number':
      return Number.isInteger(v) && !Number.isSafeInteger(v) ? BigInt(v) : v;
    case 'string':
    case 'bigint':
    case 'boolean':
      return v;
    case 'object':
      break;
    default:
      throw new PlistError(`${typeof v} has no plist form`);
  }
  if (v === null) throw new PlistError('null has no XML plist form');
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new PlistError('invalid Date');
    return v;
  }
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    v.forEach((item, i) => {
      const e = checkEncodable(item, depth + 1);
      if (e !== item) (out ??= [...v])[i] = e;
    });
    return out ?? v;
  }
  let out: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(v)) {
    // Omitted like JSON.stringify does, so optional reply fields can be
    // written as `{ Key: maybe }`.
    if (item === undefined) continue;
    const e = checkEncodable(item, depth + 1);
    if (e !== item) (out ??= { ...v })[key] = e;
  }
  return out ?? v;
}
