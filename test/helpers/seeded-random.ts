// A small deterministic PRNG (mulberry32) for the fuzz loops: the same seed
// gives the same cases on every run, so a failure can be replayed.
export function seededRandom(seed: number): { next(): number; int(n: number): number; pick<T>(items: readonly T[]): T } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: (items) => items[int(items.length)]! };
}

const INTERESTING_U32 = [0, 1, 3, 4, 0x7f, 0xff, 0x1000, 0xf000, 0xe000, 0x9000, 0x8000, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff];

/** One random mutation of `input`: a bit flip, an interesting u32, an insert, a delete or a truncation. */
export function mutate(input: Buffer, rnd: ReturnType<typeof seededRandom>): Buffer {
  const b = Buffer.from(input);
  switch (rnd.int(5)) {
    case 0:
      if (b.length) b[rnd.int(b.length)]! ^= 1 << rnd.int(8);
      return b;
    case 1:
      if (b.length >= 4) b.writeUInt32LE(rnd.pick(INTERESTING_U32), rnd.int(b.length - 3) & ~3);
      return b;
    case 2: {
      const at = rnd.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), Buffer.from([rnd.int(256), rnd.int(256), rnd.int(256), rnd.int(256)]), b.subarray(at)]);
    }
    case 3: {
      const at = rnd.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rnd.int(8))]);
    }
    default:
      return b.subarray(0, rnd.int(b.length + 1));
  }
}
