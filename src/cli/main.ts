#!/usr/bin/env node
// The tsmuxd command: with options (or none) it is the daemon, like usbmuxd;
// a first word names a subcommand.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { native, packageRoot } from '../native.js';
import { DAEMON_HELP, runDaemonCommand } from './daemon-command.js';
import { runInfo } from './commands/info.js';
import { runPairing } from './commands/pairing.js';
import { runSimCommand } from './sim-command.js';

const HELP = `usage: tsmuxd [options]          run the daemon (see below)
       tsmuxd <command> [options]

commands:
  version            the versions of tsmuxd, Node and the bundled libusb
  sim --cable PATH [--count N] [--udid U] [--trust auto|prompt|deny] [--product-version V] ...
                     simulated iPhones on a virtual cable (tsmuxd sim --help)
  info [UDID] [--domain D] [KEY]   lockdown values (a TLS session with the stored record)
  pair | validate | unpair [UDID]  pair with a phone (waits for Trust), check or undo it
  help               this text

${DAEMON_HELP}`;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return `tsmuxd ${pkg.version} (node ${process.version}, libusb ${native.libusbVersion()} static)`;
}

const args = process.argv.slice(2);
const [command, ...rest] = args;
try {
  if (command === 'version' || command === '--version' || command === '-V') {
    console.log(version());
  } else if (command === 'sim' || command === 'sim-peer') {
    process.exitCode = await runSimCommand(rest);
  } else if (command === 'info') {
    process.exitCode = await runInfo(rest);
  } else if (command === 'pair' || command === 'validate' || command === 'unpair') {
    process.exitCode = await runPairing(command, rest);
  } else if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP);
  } else if (command === undefined || command.startsWith('-')) {
    process.exitCode = await runDaemonCommand(args);
  } else {
    process.stderr.write(`tsmuxd: unknown command '${command}'\n\n${HELP}`);
    process.exitCode = 2;
  }
} catch (err) {
  process.stderr.write(`tsmuxd: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
