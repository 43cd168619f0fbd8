#!/usr/bin/env node
// Runs one minimal simulated phone in its own process:
//   node dist/src/sim/peer-main.js (--cable PATH | --ffs DIR) [--serial S] [--window N]
//        [--trust auto|prompt|deny] [--trust-delay-ms N]
//        [--ffs-interface ptp=DIR --ffs-interface audio=DIR --ffs-interface ethernet=DIR]
// It prints JSON lines: {"ready":true,...} each time a mux session is up, and
// with --ffs first {"ffs":DIR,"descriptors":true} once the descriptors are
// written (the gadget may be bound to its UDC from then on), then one line per
// detach and FunctionFS event. On a cable it exits when the cable goes away; on
// FunctionFS it outlives unplugs (the gadget rebinding is a new session) and
// exits on SIGTERM. SIGHUP prints the engine's counters. With --trust prompt, SIGUSR1 taps Trust and SIGUSR2 taps
// Don't Trust on the pairing dialog.
import { parseArgs } from 'node:util';

import { PHONE_FFS_INTERFACES, type PhoneFfsInterface } from './descriptor.js';
import { TRUST_MODES, type TrustMode } from './lockdown/lockdownd.js';
import { startPeer } from './peer.js';

const { values } = parseArgs({
  options: {
    cable: { type: 'string' },
    ffs: { type: 'string' },
    'ffs-interface': { type: 'string', multiple: true },
    serial: { type: 'string' },
    window: { type: 'string' },
    'max-packet-size': { type: 'string' },
    'socket-dir': { type: 'string' },
    trust: { type: 'string' },
    'trust-delay-ms': { type: 'string' },
  },
});
const trust = values.trust as TrustMode | undefined;
if (!values.cable === !values.ffs || (trust !== undefined && !TRUST_MODES.includes(trust))) {
  process.stderr.write(
    'usage: peer-main (--cable PATH | --ffs DIR) [--serial S] [--window BYTES] [--socket-dir DIR] [--trust auto|prompt|deny] [--trust-delay-ms N]\n',
  );
  process.exit(2);
}
const ffsInterfaces: Partial<Record<PhoneFfsInterface, string>> = {};
for (const spec of values['ffs-interface'] ?? []) {
  const [kind, dir] = spec.split('=', 2) as [string, string | undefined];
  if (!values.ffs || !dir || !(kind in PHONE_FFS_INTERFACES)) {
    process.stderr.write(`--ffs-interface wants KIND=DIR with --ffs, KIND one of ${Object.keys(PHONE_FFS_INTERFACES).join(', ')}\n`);
    process.exit(2);
  }
  ffsInterfaces[kind as PhoneFfsInterface] = dir;
}
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const peer = await startPeer({
  cable: values.cable,
  ffs: values.ffs,
  ffsInterfaces,
  window: values.window ? Number(values.window) : undefined,
  socketDir: values['socket-dir'],
  trust,
  trustDelayMs: values['trust-delay-ms'] ? Number(values['trust-delay-ms']) : undefined,
  usb: {
    serial: values.serial,
    maxPacketSize: values['max-packet-size'] ? Number(values['max-packet-size']) : undefined,
  },
});
if (values.ffs) say({ ffs: values.ffs, descriptors: true, serial: peer.serial, pid: process.pid });
peer.engine.on('detached', (d) => {
  if (!values.ffs) {
    void peer.close().then(() => process.exit(0));
    return;
  }
  say({ detached: true, code: d.code, reason: d.reason });
});
if (values.ffs) {
  peer.engine.on('log', (l) => {
    if (l.text.startsWith('FunctionFS')) say({ log: l.text });
  });
}
peer.engine.on('ready', () => {
  say({ ready: true, serial: peer.serial, pid: process.pid, services: peer.services });
});
// SIGHUP: one line of the data plane's counters (transfers, ZLPs, ACKs...).
process.on('SIGHUP', () => say({ stats: peer.engine.stats() }));
process.on('SIGUSR1', () => peer.trust());
process.on('SIGUSR2', () => peer.deny());
process.on('SIGTERM', () => void peer.close().then(() => process.exit(0)));
