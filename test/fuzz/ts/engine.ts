// The fuzz loop: take a corpus entry, mutate it, run it, and keep the mutant
// when it reached new code (V8 block coverage, sampled per batch) or ended
// in an outcome not seen before (an error code and message template, or the
// shape of what was parsed). Each input is checked for the invariant (a value
// or a typed error), for time (over `slowMs` on a re-run too is a finding)
// and for memory (a batch whose retained allocations outgrow its inputs is
// re-run input by input to find the one that allocates).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { saveEntry, saveFinding } from './corpus.js';
import { CoverageTracker } from './coverage.js';
import { mutate } from './mutators.js';
import { Rng } from './rng.js';
import { errorSignature, isTypedError, Mismatch, type Target } from './target.js';
import type { Watchdog } from './watchdog.js';

export type FindingKind = 'crash' | 'mismatch' | 'slow' | 'memory';

export interface Finding {
  kind: FindingKind;
  message: string;
  input: Buffer;
  file?: string;
}

export interface FuzzOptions {
  seed: number;
  /** Stop after this many seconds ... */
  seconds?: number;
  /** ... or this many mutated inputs, whichever comes first. */
  maxExecs?: number;
  /** Use V8 block coverage as feedback (otherwise outcome signatures only). */
  coverage?: boolean;
  /** Where new corpus entries are written (a scratch copy); none: kept in memory only. */
  corpusOut?: string;
  /** Where findings are written; none: only returned. */
  findingsDir?: string;
  slowMs?: number;
  watchdog?: Watchdog;
}

export interface FuzzStats {
  target: string;
  seed: number;
  execs: number;
  seconds: number;
  initialCorpus: number;
  corpusSize: number;
  newEntries: number;
  signatures: number;
  blocks: number;
  coverageMs: number;
  /** Batches that reached new blocks and were re-run input by input. */
  novelBatches: number;
  maxRssMb: number;
  findings: Finding[];
}

const BATCH = 64;
/** Retained memory an input may leave behind beyond a multiple of its own size. */
const MEMORY_SLACK = 8 * 1024 * 1024;
const MEMORY_FACTOR = 64;
// Coverage is the main signal; new outcomes add a bounded number of entries on top.
const MAX_SIGNATURE_ENTRIES = 300;

/** Per-input generator: the same input always gets the same chunking, so a finding replays. */
export function inputRng(input: Buffer): Rng {
  let h = 0x811c9dc5;
  for (let i = 0; i < input.length; i++) h = Math.imul(h ^ input[i]!, 0x01000193);
  return new Rng(h >>> 0);
}

export interface Outcome {
  signature?: string;
  finding?: Omit<Finding, 'input'>;
  ms: number;
}

function execute(target: Target, input: Buffer): Outcome {
  const t0 = performance.now();
  try {
    const sig = target.run(input, inputRng(input));
    return { signature: `ok:${sig}`, ms: performance.now() - t0 };
  } catch (err) {
    const ms = performance.now() - t0;
    if (err instanceof Mismatch) return { finding: { kind: 'mismatch', message: err.message }, ms };
    if (isTypedError(target, err)) return { signature: `err:${errorSignature(err as Error)}`, ms };
    const e = err instanceof Error ? err : new Error(String(err));
    return { finding: { kind: 'crash', message: `${e.name}: ${e.message}\n${e.stack ?? ''}` }, ms };
  }
}

/**
 * Runs one input and applies the time limit. A slow input is re-run four
 * times and the fastest run counts: on a shared machine one run can stall
 * for a scheduler's time slice, but a parse that is really slow is slow
 * every time.
 */
export function runOne(target: Target, input: Buffer, slowMs = 100): Outcome {
  const out = execute(target, input);
  if (out.finding || out.ms <= slowMs) return out;
  let best = out.ms;
  for (let i = 0; i < 4 && best > slowMs; i++) best = Math.min(best, execute(target, input).ms);
  if (best <= slowMs) return out;
  return { finding: { kind: 'slow', message: `took ${best.toFixed(1)} ms (limit ${slowMs} ms)` }, ms: best };
}

let gcFn: (() => void) | undefined;
function collect(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

const retained = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** Dedupe by kind and the first two lines of the message with numbers blanked. */
const findingKey = (f: Omit<Finding, 'input'>) => `${f.kind}:${f.message.split('\n').slice(0, 2).join('|').replace(/\d+/g, '#')}`;

export function fuzz(target: Target, seeds: readonly Buffer[], options: FuzzOptions): FuzzStats {
  const rnd = new Rng(options.seed);
  const slowMs = options.slowMs ?? 100;
  const corpus: Buffer[] = [];
  const signatures = new Set<string>();
  const findings: Finding[] = [];
  const findingKeys = new Set<string>();
  const coverage = options.coverage ? new CoverageTracker((url) => url.includes('/src/') || url.includes('/node_modules/')) : undefined;
  let execs = 0;
  let newEntries = 0;
  let signatureEntries = 0;
  let maxRss = 0;
  let novelBatches = 0;

  const report = (f: Omit<Finding, 'input'>, input: Buffer) => {
    const key = findingKey(f);
    if (findingKeys.has(key)) return;
    findingKeys.add(key);
    const finding: Finding = { ...f, input };
    if (options.findingsDir) finding.file = saveFinding(options.findingsDir, f.kind, input, `${target.name}: ${f.message}\n`);
    findings.push(finding);
  };

  const run = (input: Buffer): Outcome => {
    options.watchdog?.running(input);
    const out = runOne(target, input, slowMs);
    if (out.finding) report(out.finding, input);
    return out;
  };

  const kept = new WeakSet<Buffer>();
  const keep = (input: Buffer) => {
    // An input can be new twice over (a new outcome, then new blocks).
    if (kept.has(input)) return;
    kept.add(input);
    corpus.push(input);
    newEntries++;
    if (options.corpusOut) saveEntry(options.corpusOut, input);
  };

  // The seeds define what is already known: their outcomes and their coverage.
  coverage?.reset();
  for (const s of seeds) {
    const out = run(s);
    if (out.signature) signatures.add(out.signature);
    corpus.push(s);
  }
  coverage?.novel();
  if (corpus.length === 0) corpus.push(Buffer.alloc(0));
  const initialCorpus = corpus.length;

  collect();
  const baseline = retained();
  const t0 = performance.now();
  let lastLeakCheck = t0;
  const deadline = t0 + (options.seconds ?? 60) * 1000;
  const maxExecs = options.maxExecs ?? Number.POSITIVE_INFINITY;

  // Finds the inputs of a batch that reached new blocks by halving it:
  // about 2·log2(n) coverage takes per new input instead of one per input.
  const locate = (inputs: Buffer[]): void => {
    if (!coverage || inputs.length === 0) return;
    coverage.reset();
    for (const input of inputs) run(input);
    if (!coverage.novel(inputs.length === 1)) return;
    if (inputs.length === 1) return keep(inputs[0]!);
    const mid = inputs.length >> 1;
    locate(inputs.slice(0, mid));
    locate(inputs.slice(mid));
  };

  let batchSize = BATCH;
  while (execs < maxExecs && performance.now() < deadline) {
    const batch: Buffer[] = [];
    const before = retained();
    const batchStart = performance.now();
    let batchBytes = 0;
    for (let i = 0; i < batchSize && execs < maxExecs; i++) {
      const input = mutate(rnd.pick(corpus), { rnd, target, corpus });
      batch.push(input);
      batchBytes += input.length;
      execs++;
      const out = run(input);
      if (out.signature && !signatures.has(out.signature)) {
        signatures.add(out.signature);
        if (signatureEntries < MAX_SIGNATURE_ENTRIES) {
          signatureEntries++;
          keep(input);
        }
      }
    }
    const batchMs = performance.now() - batchStart;
    // Retained growth beyond what the inputs themselves explain: find the input.
    if (retained() - before > MEMORY_SLACK + MEMORY_FACTOR * batchBytes) {
      for (const input of batch) {
        collect();
        const m0 = retained();
        const out = run(input);
        const grown = retained() - m0;
        if (!out.finding && grown > MEMORY_SLACK + MEMORY_FACTOR * input.length) {
          report({ kind: 'memory', message: `retained ${(grown / 1048576).toFixed(1)} MiB after one ${input.length}-byte input` }, input);
        }
      }
    }
    if (coverage) {
      // A take costs about the same whatever the batch, so the batch grows
      // until taking is at most a fifth of the time spent running inputs.
      const spent = coverage.spentMs;
      const fresh = coverage.novel(false);
      const takeMs = coverage.spentMs - spent;
      batchSize = Math.max(16, Math.min(4096, Math.round(batchSize * Math.min(2, Math.max(0.5, (5 * takeMs) / Math.max(batchMs, 0.01))))));
      if (fresh) {
        novelBatches++;
        const mid = batch.length >> 1;
        locate(batch.slice(0, mid));
        locate(batch.slice(mid));
        // Blocks no single input reaches again (first-call paths, a batch's
        // combined state) are marked reached, or every later batch would look new.
        coverage.reset();
        for (const input of batch) run(input);
        coverage.novel(true);
      }
    }
    const now = performance.now();
    if (now - lastLeakCheck > 2000) {
      lastLeakCheck = now;
      maxRss = Math.max(maxRss, process.memoryUsage.rss());
      collect();
      const grown = retained() - baseline;
      // The corpus itself may grow; anything far beyond it is a leak in the parsers.
      const corpusBytes = corpus.reduce((n, b) => n + b.length, 0);
      if (grown > 128 * 1024 * 1024 + 4 * corpusBytes) {
        report({ kind: 'memory', message: `heap grew ${(grown / 1048576).toFixed(0)} MiB over the run` }, batch[batch.length - 1] ?? Buffer.alloc(0));
      }
    }
  }
  options.watchdog?.idle();
  maxRss = Math.max(maxRss, process.memoryUsage.rss());
  const seconds = (performance.now() - t0) / 1000;
  const stats: FuzzStats = {
    target: target.name,
    seed: options.seed,
    execs,
    seconds,
    initialCorpus,
    corpusSize: corpus.length,
    newEntries,
    signatures: signatures.size,
    blocks: coverage?.blocks ?? 0,
    coverageMs: coverage?.spentMs ?? 0,
    novelBatches,
    maxRssMb: maxRss / 1048576,
    findings,
  };
  coverage?.close();
  return stats;
}

/** Runs every input once; returns the findings. */
export function replay(target: Target, inputs: ReadonlyArray<{ name: string; bytes: Buffer }>, slowMs = 100): Array<Finding & { name: string }> {
  const out: Array<Finding & { name: string }> = [];
  for (const { name, bytes } of inputs) {
    const r = runOne(target, bytes, slowMs);
    if (r.finding) out.push({ ...r.finding, input: bytes, name });
  }
  return out;
}
