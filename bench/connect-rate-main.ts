#!/usr/bin/env node
// node dist/bench/connect-rate-main.js [--seconds N]: usbmuxd connect cycles
// per second through the daemon, beside the direct-TCP reference.
import { parseArgs } from 'node:util';

import { benchConnectRate } from './connect-rate.js';

const { values } = parseArgs({ options: { seconds: { type: 'string' } } });
const seconds = values.seconds ? Number(values.seconds) : 5;
if (!(seconds > 0)) throw new Error(`--seconds needs a positive number, not '${values.seconds}'`);

const r = await benchConnectRate(seconds);
console.log(`connect cycles, sequential, ${seconds} s each (alternating 1 s slices)`);
console.log(`through tsmuxd (Connect + 1-byte echo): ${r.connectsPerSec.toFixed(0).padStart(7)} /s`);
console.log(`direct TCP to the echo (reference):     ${r.reference.toFixed(0).padStart(7)} /s`);
console.log(`tsmuxd/direct: ${(r.connectsPerSec / r.reference).toFixed(3)}x`);
