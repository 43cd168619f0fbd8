#!/usr/bin/env node
// The tsmuxd command: with options (or none) it is the daemon, like usbmuxd;
// a first word names a subcommand.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { COMMANDS } from './commands/index.js';
import { DAEMON_HELP } from './daemon-help.js';
import { UsageError } from './usage-error.js';

// Every command's module is imported only when it runs: a client command
// need not load the daemon, the addon or node-forge (`tsmuxd help` starts in
// under half the time, `tsmuxd devices` about 100 ms sooner).

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

async function version(): Promise<string> {
  const { native, packageRoot } = await import('../native/addon.js');
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
    console.log(await version());
  } else if (command === 'sim' || command === 'sim-peer') {
    process.exitCode = await (await import('./sim-command.js')).runSimCommand(rest);
  } else if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP);
  } else if (command === undefined || command.startsWith('-')) {
    process.exitCode = await (await import('./daemon-command.js')).runDaemonCommand(args);
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
