// The TypeScript fuzzer's command line:
//   node dist/test/fuzz/ts/run.js [--seconds N] [--execs N] [--target NAME[,NAME]] [--seed S]
//                                 [--jobs J] [--no-coverage] [--replay]
// Fuzzes each target for N seconds (default 60) on a scratch copy of its
// committed corpus (test/fuzz/corpus/ts-<target>/), or with --replay runs
// every committed corpus file once. Findings go to
// build-fuzz/ts-crashes/<target>/; any finding makes the exit status 1.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { corpusDir, crashDir, loadCorpus, temporaryCopy } from './corpus.js';
import { fuzz, replay } from './engine.js';
import { TARGETS, targetByName } from './targets/index.js';
import type { Target } from './target.js';
import { Watchdog } from './watchdog.js';

interface Args {
  seconds: number;
  execs?: number;
  targets: Target[];
  seed: number;
  /** Targets fuzzed at once, each in its own process. */
  jobs: number;
  coverage: boolean;
  replay: boolean;
  keep: boolean;
  /** Set for the per-target child processes, whose parent has printed the seed. */
  quietSeed?: boolean;
}

function usage(why: string): never {
  process.stderr.write(`${why}\nusage: run.js [--seconds N] [--execs N] [--target NAME[,NAME]] [--seed S] [--jobs J] [--no-coverage] [--keep] [--replay]\n`);
  process.stderr.write(`targets: ${TARGETS.map((t) => t.name).join(', ')}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seconds: 60, targets: [...TARGETS], seed: Date.now() % 0x100000000, jobs: 1, coverage: true, replay: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    const number = () => {
      const n = Number(value());
      if (!Number.isFinite(n) || n < 0) usage(`${a} needs a number`);
      return n;
    };
    if (a === '--seconds') args.seconds = number();
    else if (a === '--execs') args.execs = number();
    else if (a === '--seed') args.seed = number() >>> 0;
    else if (a === '--jobs') args.jobs = Math.max(1, Math.floor(number()));
    else if (a === '--no-coverage') args.coverage = false;
    else if (a === '--replay') args.replay = true;
    else if (a === '--keep') args.keep = true;
    else if (a === '--quiet-seed') args.quietSeed = true;
    else if (a === '--target') {
      args.targets = value()
        .split(',')
        .map((n) => targetByName(n) ?? usage(`no target '${n}'`));
    } else usage(`unknown argument ${a}`);
  }
  return args;
}

/** The arguments without --target and --seed (and their values). */
function withoutTargetArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--target' || argv[i] === '--seed' || argv[i] === '--jobs') i++;
    else out.push(argv[i]!);
  }
  return out;
}

/** One seed per target from the run's seed, so `--target X --seed S` repeats X's part of a full run. */
function targetSeed(seed: number, name: string): number {
  let h = seed >>> 0;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  let findings = 0;
  if (args.replay) {
    for (const target of args.targets) {
      const inputs = loadCorpus(corpusDir(target.name));
      const found = replay(target, inputs);
      findings += found.length;
      console.log(`${target.name.padEnd(10)} replayed ${inputs.length} corpus files, ${found.length} findings`);
      for (const f of found) console.log(`  ${f.name}: ${f.kind}: ${f.message.split('\n')[0]}`);
    }
    return findings ? 1 : 0;
  }
  if (!args.quietSeed) console.log(`seed ${args.seed} (repeat with --seed ${args.seed}); coverage feedback ${args.coverage ? 'on' : 'off'}`);
  if (args.targets.length > 1) {
    // One process per target: V8 stops counting blocks in code compiled
    // under an earlier target's coverage session (usbmux-v1 after lockdown
    // saw 272 blocks instead of 867), and each target starts from a clean heap.
    let status = 0;
    const rest = withoutTargetArgs(process.argv.slice(2));
    const queue = [...args.targets];
    const worker = async () => {
      for (let target = queue.shift(); target; target = queue.shift()) {
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...rest, '--seed', String(args.seed), '--target', target.name, '--quiet-seed'], {
          stdio: 'inherit',
        });
        const [code] = (await once(child, 'exit')) as [number | null];
        if (code !== 0) status = 1;
      }
    };
    await Promise.all(Array.from({ length: Math.min(args.jobs, args.targets.length) }, worker));
    return status;
  }
  for (const target of args.targets) {
    const seeds = loadCorpus(corpusDir(target.name)).map((e) => e.bytes);
    const scratch = temporaryCopy(target.name, corpusDir(target.name));
    const watchdog = new Watchdog(crashDir(target.name));
    const stats = fuzz(target, seeds, {
      seed: targetSeed(args.seed, target.name),
      seconds: args.seconds,
      maxExecs: args.execs,
      coverage: args.coverage,
      corpusOut: scratch,
      findingsDir: crashDir(target.name),
      watchdog,
    });
    await watchdog.stop();
    findings += stats.findings.length;
    const rate = stats.execs / Math.max(stats.seconds, 1e-9);
    console.log(
      `${target.name.padEnd(10)} execs ${stats.execs}  exec/s ${rate.toFixed(0)}  corpus ${stats.initialCorpus} -> ${stats.corpusSize} (+${stats.newEntries})  ` +
        `outcomes ${stats.signatures}  blocks ${stats.blocks} (${stats.novelBatches} batches re-run)  coverage ${((stats.coverageMs / 1000 / Math.max(stats.seconds, 1e-9)) * 100).toFixed(1)}% of time  ` +
        `rss ${stats.maxRssMb.toFixed(0)} MiB  findings ${stats.findings.length}`,
    );
    for (const f of stats.findings) console.log(`  ${f.kind}: ${f.message.split('\n')[0]}${f.file ? ` -> ${f.file}` : ''}`);
    if (args.keep) console.log(`  corpus kept in ${scratch}`);
    else rmSync(scratch, { recursive: true, force: true });
  }
  return findings ? 1 : 0;
}

process.exitCode = await main();
