#!/usr/bin/env node
// The tsmuxd command. The daemon and the user commands (devices, info, pair,
// forward, top) arrive with the server issue; today it reports what it is
// built from and runs a simulated phone on a virtual cable.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { native, packageRoot } from '../native.js';

const HELP = `usage: tsmuxd <command> [options]

commands:
  version            print the versions of tsmuxd, Node and the bundled libusb
  sim-peer --cable PATH [--serial S] [--window BYTES] [--socket-dir DIR]
                     attach a minimal simulated phone (echo 7, sink 9, source 19)
                     to a virtual cable
  help               this text
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return `tsmuxd ${pkg.version} (node ${process.version}, libusb ${native.libusbVersion()} static)`;
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'version':
  case '--version':
  case '-V':
    console.log(version());
    break;
  case 'sim-peer':
    process.argv = [process.argv[0], process.argv[1], ...rest];
    await import('../sim/peer-main.js');
    break;
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    process.stdout.write(HELP);
    break;
  default:
    process.stderr.write(`tsmuxd: unknown command '${command}'\n\n${HELP}`);
    process.exitCode = 2;
}
