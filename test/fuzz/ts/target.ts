// What a fuzz target is, and the helpers targets share: the typed-error
// invariant, chunked feeding of incremental parsers, and canonical forms of
// parsed values so two parses can be compared (and summarised cheaply into an
// outcome signature).
import type { Rng } from './rng.js';

/** Where a length or count field sits in an input, for the structure-aware mutators. */
export interface Field {
  offset: number;
  width: 1 | 2 | 3 | 4 | 8;
  endian: 'le' | 'be';
}

export interface Target {
  name: string;
  /** The typed error classes a parser may throw; anything else is a finding. */
  errors: ReadonlyArray<abstract new (...args: never[]) => Error>;
  /**
   * Runs one input. Returns an outcome signature (what happened, in a few
   * words); throws the parser's typed error, or a Mismatch when two views of
   * the same bytes disagree, or anything else on a bug.
   */
  run(input: Buffer, rnd: Rng): string;
  /** Length/count fields of this input, if the target can find them. */
  fields?(input: Buffer): Field[];
  /** Tokens worth inserting (tags, magic numbers, markers). */
  dictionary?: Buffer[];
  /** Inputs are capped at this many bytes (default 16 KiB). */
  maxLength?: number;
}

/** Two views of the same input disagreed (whole vs chunked, fast vs general, decode vs re-encode). */
export class Mismatch extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Mismatch';
  }
}

/** The signature of a typed error: its code and its message with the variable parts blanked. */
export function errorSignature(err: Error & { code?: unknown }): string {
  const template = err.message
    .replace(/"[^"]*"|'[^']*'/g, '…')
    .replace(/0x[0-9a-f]+|\d+/gi, '#')
    .slice(0, 40);
  return `${String(err.code)}:${template}`;
}

/** True when `err` is one of the target's typed errors and carries a code. */
export function isTypedError(target: Target, err: unknown): boolean {
  if (!target.errors.some((cls) => err instanceof cls)) return false;
  const code = (err as { code?: unknown }).code;
  return (typeof code === 'string' && code.length > 0) || typeof code === 'number';
}

/** Cuts `input` into random pieces (some empty), covering every byte in order. */
export function randomChunks(input: Buffer, rnd: Rng): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < input.length) {
    const n = rnd.chance(0.1) ? 0 : rnd.chance(0.5) ? 1 + rnd.int(4) : 1 + rnd.int(input.length - at);
    out.push(input.subarray(at, at + n));
    at += n;
  }
  if (rnd.chance(0.2)) out.push(Buffer.alloc(0));
  return out;
}

/** Hands each item an incremental parser yields to `emit`, as soon as it has it. */
export type Push<T> = (chunk: Buffer, emit: (item: T) => void) => void;

export interface Fed<T> {
  items: T[];
  /** What the parser threw, if it threw (feeding stops there). */
  error?: unknown;
}

/** Feeds chunks to a fresh parser, collecting what it yields; stops at the first throw. */
export function feed<T>(chunks: Buffer[], push: Push<T>): Fed<T> {
  const items: T[] = [];
  const emit = (item: T) => void items.push(item);
  for (const chunk of chunks) {
    try {
      push(chunk, emit);
    } catch (error) {
      return { items, error };
    }
  }
  return { items };
}

/**
 * Feeds `input` whole and in a random chunking and demands the same items
 * and the same failure; returns the whole feed's. `lossy` is for parsers
 * whose push() returns an array and so drops the items of a chunk it throws
 * in: before an error, the whole feed may then yield a prefix of what the
 * chunked feed yields (the connection is dead either way).
 */
export function wholeAndChunked<T>(input: Buffer, rnd: Rng, make: () => Push<T>, describe: (item: T) => string, lossy = false): Fed<T> {
  const whole = feed([input], make());
  const chunked = feed(randomChunks(input, rnd), make());
  const a = whole.items.map(describe);
  const b = chunked.items.map(describe);
  const ea = whole.error === undefined ? '' : errorKey(whole.error);
  const eb = chunked.error === undefined ? '' : errorKey(chunked.error);
  if (ea !== eb) throw new Mismatch(`whole feed ended with '${ea}', chunked with '${eb}'`);
  const prefixOnly = lossy && whole.error !== undefined;
  const same = prefixOnly ? a.length <= b.length && a.every((x, i) => x === b[i]) : a.length === b.length && a.every((x, i) => x === b[i]);
  if (!same) throw new Mismatch(`whole feed gave ${a.length} items, chunked ${b.length} (or different ones)`);
  return whole;
}

function errorKey(err: unknown): string {
  return err instanceof Error ? `${err.name}:${String((err as { code?: unknown }).code)}` : String(err);
}

/**
 * A deterministic text form of a parsed value (plist or XPC), exact enough to
 * compare two parses: bigint vs number, -0, NaN, bytes, dates and class
 * instances (Int64, Uuid, ...) are all told apart.
 */
export function canon(v: unknown, depth = 0): string {
  if (depth > 200) return '…';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'bigint':
      return `${v}n`;
    case 'number':
      return Object.is(v, -0) ? '-0' : String(v);
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
    case 'undefined':
      return String(v);
    case 'object':
      break;
    default:
      return `<${typeof v}>`;
  }
  if (v instanceof Uint8Array) return `<${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}>`;
  if (v instanceof Date) return `D(${v.getTime()})`;
  if (Array.isArray(v)) return `[${v.map((x) => canon(x, depth + 1)).join(',')}]`;
  if (v instanceof Map) return `M{${[...v].map(([k, x]) => `${JSON.stringify(k)}:${canon(x, depth + 1)}`).join(',')}}`;
  const name = (v as object).constructor?.name ?? '';
  const body = Object.entries(v as object).map(([k, x]) => `${JSON.stringify(k)}:${canon(x, depth + 1)}`);
  return `${name === 'Object' ? '' : name}{${body.join(',')}}`;
}

/** An outcome from its parts, order and repeats ignored, so the number of distinct outcomes stays small. */
export const summary = (parts: readonly string[]) => [...new Set(parts)].sort().slice(0, 8).join(',');

export const bucket = (n: number)  => (n < 4 ? String(n) : n < 8 ? '4+' : n < 16 ? '8+' : '16+');

/** A coarse shape of a parsed value for outcome signatures: types and count buckets, two levels deep. */
export function shape(v: unknown, depth = 0): string {
  if (v === null || v === undefined) return 'n';
  if (typeof v !== 'object') return (typeof v)[0]!;
  if (v instanceof Uint8Array) return 'b';
  if (v instanceof Date) return 'D';
  const children = Array.isArray(v) ? v : v instanceof Map ? [...v.values()] : Object.values(v);
  const tag = Array.isArray(v) ? 'a' : v instanceof Map || (v as object).constructor === Object ? 'd' : (v as object).constructor.name;
  if (depth >= 2) return `${tag}${bucket(children.length)}`;
  const kinds = [...new Set(children.map((c) => shape(c, depth + 1)))].sort().slice(0, 6);
  return `${tag}${bucket(children.length)}(${kinds.join(',')})`;
}
