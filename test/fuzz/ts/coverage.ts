// Block coverage from V8 through node:inspector, as the fuzzer's feedback.
// Precise coverage with call counts resets the counters on every take, so a
// take after running some inputs tells which blocks those inputs reached.
//
// V8 reports a function's blocks as nested ranges and leaves out a block
// whose count equals its parent's, so "covered" cannot be read off the
// ranges of one report: a block seen uncovered once (count 0) may simply be
// absent when it runs. Every range ever reported is therefore remembered,
// and in each report a remembered range counts as covered when the innermost
// reported range around it has a non-zero count.
import { Session } from 'node:inspector';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface FunctionCoverage {
  functionName: string;
  ranges: Range[];
}
interface ScriptCoverage {
  url: string;
  functions: FunctionCoverage[];
}

export class CoverageTracker {
  private readonly session = new Session();
  /** Per function (url + start offset): every range seen, and how many of them were never reached. */
  private readonly known = new Map<string, { ranges: Map<number, { start: number; end: number; covered: boolean }>; uncovered: number }>();
  private coveredCount = 0;
  /** Milliseconds spent in takePreciseCoverage and in reading its result. */
  spentMs = 0;
  /** The part of spentMs inside takePreciseCoverage itself. */
  takeMs = 0;
  takes = 0;

  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    // A same-thread session answers synchronously, so post() can be used inline.
    this.session.post('Profiler.enable');
    this.session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  get blocks(): number {
    return this.coveredCount;
  }

  /** Discards the counts gathered so far. */
  reset(): void {
    this.take();
  }

  /**
   * Takes the counts since the last take; true when they reach a block never
   * reached before. Without `commit` the blocks stay unreached, so the inputs
   * of a batch can be re-run one by one to find which reached them.
   */
  novel(commit = true): boolean {
    const scripts = this.take();
    const t0 = performance.now();
    let fresh = false;
    for (const script of scripts) {
      if (!this.include(script.url)) continue;
      for (const fn of script.functions) {
        // Most functions did not run at all; nothing in them can be new.
        if (fn.ranges[0]!.count === 0) continue;
        if (this.merge(`${script.url}@${fn.ranges[0]!.startOffset}`, fn.ranges, commit)) fresh = true;
      }
    }
    this.spentMs += performance.now() - t0;
    return fresh;
  }

  close(): void {
    this.session.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }

  private take(): ScriptCoverage[] {
    const t0 = performance.now();
    let result: ScriptCoverage[] = [];
    this.session.post('Profiler.takePreciseCoverage', (err, res) => {
      if (!err) result = (res as { result: ScriptCoverage[] }).result;
    });
    this.takes++;
    this.takeMs += performance.now() - t0;
    this.spentMs += performance.now() - t0;
    return result;
  }

  private merge(fnKey: string, ranges: Range[], commit: boolean): boolean {
    let fn = this.known.get(fnKey);
    if (!fn) this.known.set(fnKey, (fn = { ranges: new Map(), uncovered: 0 }));
    for (const r of ranges) {
      const key = r.startOffset * 0x100000 + r.endOffset;
      if (!fn.ranges.has(key)) {
        fn.ranges.set(key, { start: r.startOffset, end: r.endOffset, covered: false });
        fn.uncovered++;
      }
    }
    if (fn.uncovered === 0) return false;
    let fresh = false;
    for (const k of fn.ranges.values()) {
      if (k.covered) continue;
      // The innermost reported range around k decides its count.
      let inner: Range | undefined;
      for (const r of ranges) {
        if (r.startOffset <= k.start && r.endOffset >= k.end && (!inner || r.endOffset - r.startOffset <= inner.endOffset - inner.startOffset)) inner = r;
      }
      if (inner && inner.count > 0) {
        fresh = true;
        if (!commit) return true;
        k.covered = true;
        fn.uncovered--;
        this.coveredCount++;
      }
    }
    return fresh;
  }
}
