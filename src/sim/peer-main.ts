#!/usr/bin/env node
// Runs one minimal simulated phone in its own process:
//   node dist/src/sim/peer-main.js --cable PATH [--serial S] [--window N]
//        [--trust auto|prompt|deny] [--trust-delay-ms N]
// It prints one JSON line when attached and exits on SIGTERM or when the
// cable goes away. With --trust prompt, SIGUSR1 taps Trust and SIGUSR2
// taps Don't Trust on the pairing dialog.
import { parseArgs } from 'node:util';

import { TRUST_MODES, type TrustMode } from './lockdown/lockdownd.js';
import { startPeer } from './peer.js';

const { values } = parseArgs({
  options: {
    cable: { type: 'string' },
    serial: { type: 'string' },
    window: { type: 'string' },
    'max-packet-size': { type: 'string' },
    'socket-dir': { type: 'string' },
    trust: { type: 'string' },
    'trust-delay-ms': { type: 'string' },
  },
});
const trust = values.trust as TrustMode | undefined;
if (!values.cable || (trust !== undefined && !TRUST_MODES.includes(trust))) {
  process.stderr.write(
    'usage: peer-main --cable PATH [--serial S] [--window BYTES] [--socket-dir DIR] [--trust auto|prompt|deny] [--trust-delay-ms N]\n',
  );
  process.exit(2);
}
const peer = await startPeer({
  cable: values.cable,
  window: values.window ? Number(values.window) : undefined,
  socketDir: values['socket-dir'],
  trust,
  trustDelayMs: values['trust-delay-ms'] ? Number(values['trust-delay-ms']) : undefined,
  usb: {
    serial: values.serial,
    maxPacketSize: values['max-packet-size'] ? Number(values['max-packet-size']) : undefined,
  },
});
peer.engine.on('detached', () => void peer.close().then(() => process.exit(0)));
peer.engine.on('ready', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, serial: peer.serial, pid: process.pid, services: peer.services })}\n`);
});
process.on('SIGUSR1', () => peer.trust());
process.on('SIGUSR2', () => peer.deny());
process.on('SIGTERM', () => void peer.close().then(() => process.exit(0)));
