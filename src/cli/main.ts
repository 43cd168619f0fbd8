#!/usr/bin/env node
// The tsmuxd command: with options (or none) it is the daemon, like usbmuxd;
// a first word names a subcommand.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { native, packageRoot } from '../native.js';
import { UsageError, type CliCommand } from './commands/common.js';
import { benchCommand } from './commands/bench.js';
import { devicesCommand } from './commands/devices.js';
import { forwardCommand } from './commands/forward.js';
import { topCommand } from './commands/top.js';
import { DAEMON_HELP, runDaemonCommand } from './daemon-command.js';
import { infoCommand } from './commands/info.js';
import { pairingCommand } from './commands/pairing.js';
import { runSimCommand } from './sim-command.js';

/** The user commands, in help order; each lives in src/cli/commands/. */
const COMMANDS: CliCommand[] = [
  devicesCommand,
  infoCommand,
  pairingCommand('pair', 'pair with a phone, waiting while it shows the Trust dialog'),
  pairingCommand('validate', 'check the pairing with a TLS session'),
  pairingCommand('unpair', 'forget the pairing on both sides'),
  forwardCommand,
  topCommand,
  benchCommand,
];

function commandHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return COMMANDS.map((c) => `  ${c.name.padEnd(width)} ${c.summary}\n  ${' '.repeat(width)} tsmuxd ${c.usage}\n`).join('');
}

const HELP = `usage: tsmuxd [options]          run the daemon (see below)
       tsmuxd <command> [options]

commands (each takes --help):
${commandHelp()}  version            the versions of tsmuxd, Node and the bundled libusb
  sim --cable PATH [--count N] [--udid U] [--trust auto|prompt|deny] [--product-version V] ...
                     simulated iPhones on a virtual cable (tsmuxd sim --help)
  help               this text

${DAEMON_HELP}`;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return `tsmuxd ${pkg.version} (node ${process.version}, libusb ${native.libusbVersion()} static)`;
}

const args = process.argv.slice(2);
const [command, ...rest] = args;
const subcommand = COMMANDS.find((c) => c.name === command);
try {
  if (subcommand) {
    process.exitCode = await subcommand.run(rest);
  } else if (command === 'version' || command === '--version' || command === '-V') {
    console.log(version());
  } else if (command === 'sim' || command === 'sim-peer') {
    process.exitCode = await runSimCommand(rest);
  } else if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP);
  } else if (command === undefined || command.startsWith('-')) {
    process.exitCode = await runDaemonCommand(args);
  } else {
    process.stderr.write(`tsmuxd: unknown command '${command}'\n\n${HELP}`);
    process.exitCode = 2;
  }
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`tsmuxd ${command}: ${err.message} (tsmuxd ${command} --help)\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`tsmuxd${subcommand ? ` ${subcommand.name}` : ''}: ${(err as Error).message}\n`);
    process.exitCode = subcommand ? 1 : 2;
  }
}
