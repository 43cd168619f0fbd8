#!/usr/bin/env node
// One attack of the hostile benchmark, in a process of its own so its CPU is
// measured apart from the daemon's and the victim's:
//   node dist/bench/hostile/attacker.js ATTACK SOCKET CABLE VICTIM_UDID SOCKETS
// Prints {"ready":true} once the attack is in full swing; on a "stop" line
// (or stdin closing) it stops, prints {"stats":{...}} and exits.
import { createInterface } from 'node:readline';

import { ATTACKS, makeAttack, type AttackName } from './attacks.js';

const [name, socket, cable, victimUdid, sockets] = process.argv.slice(2);
if (!ATTACKS.includes(name as AttackName)) {
  process.stderr.write(`attacker: unknown attack '${name}' (one of ${ATTACKS.join(', ')})\n`);
  process.exit(2);
}

const attack = makeAttack(name as AttackName, { socket, cable, victimUdid, sockets: Number(sockets) });
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  const stats = await attack.stop();
  process.stdout.write(`${JSON.stringify({ stats })}\n`);
  process.exit(0);
};

try {
  await attack.start();
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ ready: false, error: (err as Error).message })}\n`);
  process.exit(1);
}
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => line === 'stop' && void stop());
lines.on('close', () => void stop());
