// Havoc-style mutation: a stack of 1..16 small edits, some blind (bit flips,
// random bytes), some aimed at structure the target points out (length and
// count fields get boundary integers) or knows (dictionary tokens), and
// splices with other corpus entries so valid pieces recombine.
import type { Field, Target } from './target.js';
import type { Rng } from './rng.js';

const TWO_53 = 2n ** 53n;

/** Boundary values for length and count fields: off-by-one, sign and width edges. */
export const INTERESTING: readonly bigint[] = [
  0n, 1n, 2n, 3n, 4n, 7n, 8n, 9n, 15n, 16n, 24n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x3fffn, 0x4000n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n,
  0xffffffn, 0x1000000n, 0x7fffffffn, 0x80000000n, 0xfffffffen, 0xffffffffn, 0x100000000n, TWO_53 - 1n, TWO_53, TWO_53 + 1n,
  0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn,
];

export interface MutationContext {
  rnd: Rng;
  target: Target;
  /** Other inputs to splice from. */
  corpus: readonly Buffer[];
}

type Mutator = (b: Buffer, ctx: MutationContext) => Buffer;

function writeField(b: Buffer, f: Field, value: bigint): void {
  if (f.offset + f.width > b.length) return;
  const masked = BigInt.asUintN(f.width * 8, value);
  if (f.width === 8) {
    if (f.endian === 'le') b.writeBigUInt64LE(masked, f.offset);
    else b.writeBigUInt64BE(masked, f.offset);
  } else if (f.endian === 'le') b.writeUIntLE(Number(masked), f.offset, f.width);
  else b.writeUIntBE(Number(masked), f.offset, f.width);
}

function readField(b: Buffer, f: Field): bigint {
  if (f.width === 8) return f.endian === 'le' ? b.readBigUInt64LE(f.offset) : b.readBigUInt64BE(f.offset);
  return BigInt(f.endian === 'le' ? b.readUIntLE(f.offset, f.width) : b.readUIntBE(f.offset, f.width));
}

function randomField(b: Buffer, rnd: Rng): Field | undefined {
  const width = rnd.pick([1, 2, 4, 4, 8] as const);
  if (b.length < width) return undefined;
  // Most binary formats here align their fields; aim there more often than not.
  const raw = rnd.int(b.length - width + 1);
  const offset = rnd.chance(0.6) ? raw - (raw % Math.min(width, 4)) : raw;
  return { offset, width, endian: rnd.chance(0.5) ? 'le' : 'be' };
}

function targetField(b: Buffer, ctx: MutationContext): Field | undefined {
  const fields = ctx.target.fields?.(b).filter((f) => f.offset + f.width <= b.length) ?? [];
  return fields.length ? ctx.rnd.pick(fields) : randomField(b, ctx.rnd);
}

const randomBytes = (rnd: Rng, n: number) => Buffer.from(Array.from({ length: n }, () => rnd.int(256)));

const mutators: Array<[weight: number, Mutator]> = [
  // bit flip
  [3, (b, { rnd }) => {
    if (b.length) b[rnd.int(b.length)]! ^= 1 << rnd.int(8);
    return b;
  }],
  // byte set: random, or an edge byte
  [3, (b, { rnd }) => {
    if (b.length) b[rnd.int(b.length)] = rnd.chance(0.5) ? rnd.int(256) : rnd.pick([0, 1, 0x7f, 0x80, 0xff, 0x20, 0x3c]);
    return b;
  }],
  // interesting integer in a known length/count field
  [6, (b, ctx) => {
    const f = targetField(b, ctx);
    if (f) writeField(b, f, ctx.rnd.pick(INTERESTING));
    return b;
  }],
  // small arithmetic on a field: lengths one off in either direction
  [4, (b, ctx) => {
    const f = targetField(b, ctx);
    if (f) writeField(b, f, readField(b, f) + BigInt(ctx.rnd.int(17) - 8));
    return b;
  }],
  // interesting integer anywhere
  [2, (b, ctx) => {
    const f = randomField(b, ctx.rnd);
    if (f) writeField(b, f, ctx.rnd.pick(INTERESTING));
    return b;
  }],
  // insert random bytes
  [2, (b, { rnd }) => {
    const at = rnd.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), randomBytes(rnd, rnd.skewed(16)), b.subarray(at)]);
  }],
  // insert or overwrite with a dictionary token
  [4, (b, { rnd, target }) => {
    const dict = target.dictionary;
    if (!dict?.length) return b;
    const token = rnd.pick(dict);
    const at = rnd.int(b.length + 1);
    if (rnd.chance(0.5)) return Buffer.concat([b.subarray(0, at), token, b.subarray(at)]);
    return Buffer.concat([b.subarray(0, at), token, b.subarray(Math.min(b.length, at + token.length))]);
  }],
  // delete a range
  [3, (b, { rnd }) => {
    if (!b.length) return b;
    const at = rnd.int(b.length);
    return Buffer.concat([b.subarray(0, at), b.subarray(at + rnd.skewed(b.length - at))]);
  }],
  // duplicate a range (repeats a frame, a dict entry, a tag)
  [2, (b, { rnd }) => {
    if (!b.length) return b;
    const from = rnd.int(b.length);
    const piece = b.subarray(from, from + rnd.skewed(b.length - from));
    const at = rnd.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
  }],
  // truncate
  [2, (b, { rnd }) => b.subarray(0, rnd.int(b.length + 1))],
  // extend with a copy of itself (a second message behind the first) or zeros
  [1, (b, { rnd }) => Buffer.concat([b, rnd.chance(0.5) ? b : Buffer.alloc(rnd.skewed(64))])],
  // splice: the head of this input and the tail of another
  [3, (b, { rnd, corpus }) => {
    if (!corpus.length) return b;
    const other = rnd.pick(corpus);
    return Buffer.concat([b.subarray(0, rnd.int(b.length + 1)), other.subarray(rnd.int(other.length + 1))]);
  }],
];

const totalWeight = mutators.reduce((n, [w]) => n + w, 0);

function pickMutator(rnd: Rng): Mutator {
  let r = rnd.int(totalWeight);
  for (const [w, m] of mutators) {
    if (r < w) return m;
    r -= w;
  }
  return mutators[0]![1];
}

/** A new input from `input` (which is left untouched). */
export function mutate(input: Buffer, ctx: MutationContext): Buffer {
  let b: Buffer = Buffer.from(input);
  const edits = 1 << ctx.rnd.int(5);
  // Mutators edit in place or return a new buffer; `b` is our own copy either way.
  for (let i = 0; i < edits; i++) b = pickMutator(ctx.rnd)(b, ctx);
  const max = ctx.target.maxLength ?? 16384;
  return b.length > max ? b.subarray(0, max) : b;
}
