#!/usr/bin/env node
// `node dist/src/cli/sim-peer-main.js --cable PATH ...`: simulated phones in
// this process (src/cli/sim-command.ts), without the CLI's other commands:
// the child the supervisor spawns per phone (src/supervisor), and what the
// tests and the benchmarks spawn.
import { runPeerMain } from './sim-command.js';
import { SIM_ENV } from '../supervisor/sim-process.js';

try {
  process.exitCode = await runPeerMain(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${process.env[SIM_ENV.logPrefix] ?? 'tsmuxd sim'}: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
