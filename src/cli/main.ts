#!/usr/bin/env node
// The tsmuxd command: with options (or none) it is the daemon, like usbmuxd;
// a first word names a subcommand.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { NativeUnavailableError, packageRoot } from '../native/native-error.js';
import { COMMANDS } from './commands/index.js';
import { UsageError } from './usage-error.js';

// Every command's module is imported only when it runs: a client command
// need not load the daemon, the addon or node-forge (`tsmuxd help` starts in
// under half the time, `tsmuxd devices` about 100 ms sooner).

function commandHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return COMMANDS.map((c) => `  ${c.name.padEnd(width)} ${c.summary}\n  ${' '.repeat(width)} tsmuxd ${c.usage}\n`).join('');
}

/** The whole help; the daemon's part is read only here, not on the daemon's start. */
async function help(): Promise<string> {
  const { DAEMON_HELP } = await import('./daemon-help.js');
  return `usage: tsmuxd [options]          run the daemon (see below)
       tsmuxd <command> [options]

commands (each takes --help):
${commandHelp()}  version            the versions of tsmuxd, Node and the bundled libusb; the addon's file
                     and the hash of the native sources it was built from
  sim --cable PATH [--count N] [--udid U] [--trust auto|prompt|deny] [--product-version V] ...
                     simulated iPhones on a virtual cable (tsmuxd sim --help)
  help               this text

${DAEMON_HELP}`;
}

/**
 * The versions, and which addon file was loaded with the hash of the native
 * sources it was built from; without the addon (macOS, Windows, no build) it
 * says so instead of failing.
 */
async function version(): Promise<string> {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  let libusb: string;
  let addon = '';
  try {
    const { native, nativeFile, nativeSourceHash } = await import('../native/addon.js');
    libusb = `libusb ${native.libusbVersion()} static`;
    const hash = nativeSourceHash();
    addon = `\naddon: ${nativeFile}\n${hash ? `native sources: sha256 ${hash} (the prebuild's native-sources.sha256)` : 'native sources: built here, no recorded hash'}`;
  } catch (err) {
    if (!(err instanceof NativeUnavailableError)) throw err;
    libusb = 'no native addon: client commands only';
  }
  return `tsmuxd ${pkg.version} (node ${process.version}, ${libusb})${addon}`;
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
    process.stdout.write(await help());
  } else if (command === undefined || command.startsWith('-')) {
    process.exitCode = await (await import('./daemon-command.js')).runDaemonCommand(args);
  } else {
    process.stderr.write(`tsmuxd: unknown command '${command}'\n\n${await help()}`);
    process.exitCode = 2;
  }
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`tsmuxd ${command}: ${err.message} (tsmuxd ${command} --help)\n`);
    process.exitCode = 2;
  } else if (err instanceof NativeUnavailableError) {
    // The daemon or the sim, where the addon is missing: its own message says what works instead.
    process.stderr.write(`tsmuxd: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`tsmuxd${subcommand ? ` ${subcommand.name}` : ''}: ${(err as Error).message}\n`);
    process.exitCode = subcommand ? 1 : 2;
  }
}
