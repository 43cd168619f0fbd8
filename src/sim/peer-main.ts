#!/usr/bin/env node
// `node dist/src/sim/peer-main.js --cable PATH ...`: the sim command
// (`tsmuxd sim`, src/cli/sim-command.ts) without the CLI's other commands,
// for the daemon, the tests and the benchmarks to spawn.
import { runSimCommand } from '../cli/sim-command.js';

try {
  process.exitCode = await runSimCommand(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`tsmuxd sim: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
