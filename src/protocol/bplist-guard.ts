// A structural check of a bplist00 before bplist-parser sees it. That parser
// trusts the object graph: a container that refers to itself recurses until
// the stack overflows (over 100 ms and megabytes per try), containers shared
// many times expand exponentially ("billion laughs"), and a count field of
// millions loops that many times reading past the end. Here the graph is
// walked once, with memoised sizes, and rejected when it is cyclic, too deep,
// expands far beyond its own size, or points outside the object table.

const TRAILER = 32;
/** bplist-parser's own object-count bound. */
const MAX_OBJECTS = 32768;

function readUInt(buf: Buffer, at: number, width: number): number {
  let v = 0;
  for (let i = 0; i < width; i++) v = v * 256 + buf[at + i]!;
  return v;
}

class Refused extends Error {}

/**
 * Why the object graph is unacceptable, or undefined when it is a DAG at most
 * `maxDepth` containers deep that expands to a bounded number of values: at
 * most `maxValues` when given, else 4 per byte of the file plus 1024.
 */
export function bplistStructureProblem(buf: Buffer, maxDepth: number, maxValues?: number): string | undefined {
  try {
    walkGraph(buf, maxDepth, maxValues ?? 4 * buf.length + 1024);
    return undefined;
  } catch (err) {
    if (err instanceof Refused) return err.message;
    throw err;
  }
}

function walkGraph(buf: Buffer, maxDepth: number, maxValues: number): void {
  const bad = (why: string) => new Refused(why);
  if (buf.length < 8 + TRAILER) throw bad('no trailer');
  const t = buf.length - TRAILER;
  const offsetSize = buf[t + 6]!;
  const refSize = buf[t + 7]!;
  if (offsetSize < 1 || offsetSize > 6 || refSize < 1 || refSize > 6) throw bad(`offset size ${offsetSize}, reference size ${refSize}`);
  // Eight-byte trailer fields: anything past 2^48 is out of range anyway.
  const field = (at: number) => (buf.readUInt16BE(at) !== 0 ? Number.POSITIVE_INFINITY : readUInt(buf, at + 2, 6));
  const count = field(t + 8);
  const top = field(t + 16);
  const tableAt = field(t + 24);
  if (count < 1 || count > MAX_OBJECTS) throw bad(`${count} objects`);
  if (top >= count) throw bad(`top object ${top} of ${count}`);
  if (tableAt < 8 || tableAt + count * offsetSize > t) throw bad('offset table outside the file');
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) {
    const o = readUInt(buf, tableAt + i * offsetSize, offsetSize);
    if (o < 8 || o >= tableAt) throw bad(`object ${i} at offset ${o}`);
    offsets.push(o);
  }

  // The number of values the parsed result will hold, per object (memoised);
  // -1 marks an object being walked, so meeting it again is a cycle.
  const sizes = new Map<number, number>();

  const walk = (ref: number, depth: number): number => {
    const known = sizes.get(ref);
    if (known === -1) throw bad(`object ${ref} contains itself`);
    if (known !== undefined) return known;
    const at = offsets[ref]!;
    const marker = buf[at]!;
    const type = marker >> 4;
    if (type !== 0xa && type !== 0xc && type !== 0xd) {
      sizes.set(ref, 1);
      return 1;
    }
    if (depth >= maxDepth) throw bad('nested too deeply');
    let n = marker & 0xf;
    let refsAt = at + 1;
    if (n === 0xf) {
      const intMarker = buf[at + 1];
      if (intMarker === undefined || intMarker >> 4 !== 1 || (intMarker & 0xf) > 3) throw bad(`object ${ref} has a malformed count`);
      const width = 1 << (intMarker & 0xf);
      if (at + 2 + width > tableAt) throw bad(`object ${ref} has a malformed count`);
      n = readUInt(buf, at + 2, width);
      refsAt = at + 2 + width;
    }
    const refs = type === 0xd ? 2 * n : n;
    if (refsAt + refs * refSize > tableAt) throw bad(`object ${ref} claims ${n} entries past the object table`);
    sizes.set(ref, -1);
    let total = 1;
    for (let i = 0; i < refs; i++) {
      const child = readUInt(buf, refsAt + i * refSize, refSize);
      if (child >= count) throw bad(`object ${ref} refers to object ${child} of ${count}`);
      total += walk(child, depth + 1);
      if (total > maxValues) throw bad(`expands to more than ${maxValues} values`);
    }
    sizes.set(ref, total);
    return total;
  };
  walk(top, 0);
}
