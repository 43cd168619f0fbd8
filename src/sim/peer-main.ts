#!/usr/bin/env node
// Runs one minimal simulated phone in its own process:
//   node dist/src/sim/peer-main.js --cable PATH [--serial S] [--window N]
// It prints one JSON line when attached and exits on SIGTERM or when the
// cable goes away.
import { parseArgs } from 'node:util';

import { startPeer } from './peer.js';

const { values } = parseArgs({
  options: {
    cable: { type: 'string' },
    serial: { type: 'string' },
    window: { type: 'string' },
    'max-packet-size': { type: 'string' },
    'socket-dir': { type: 'string' },
  },
});
if (!values.cable) {
  process.stderr.write('usage: peer-main --cable PATH [--serial S] [--window BYTES] [--socket-dir DIR]\n');
  process.exit(2);
}
const peer = await startPeer({
  cable: values.cable,
  window: values.window ? Number(values.window) : undefined,
  socketDir: values['socket-dir'],
  usb: {
    serial: values.serial,
    maxPacketSize: values['max-packet-size'] ? Number(values['max-packet-size']) : undefined,
  },
});
peer.engine.on('detached', () => void peer.close().then(() => process.exit(0)));
peer.engine.on('ready', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, serial: peer.serial, pid: process.pid, services: peer.services })}\n`);
});
process.on('SIGTERM', () => void peer.close().then(() => process.exit(0)));
