// A small deterministic PRNG (mulberry32). Every random choice the fuzzer
// makes comes from one of these, so a run is replayed exactly by its seed.
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Small values far more often than large ones: 1, 2, 4 ... up to `max`. */
  skewed(max: number): number {
    return Math.min(max, 1 + this.int(1 << this.int(Math.max(1, Math.ceil(Math.log2(max + 1))))));
  }

  /** A child generator, so one part of a run does not shift another's choices. */
  fork(): Rng {
    return new Rng((this.next() * 4294967296) >>> 0);
  }
}
