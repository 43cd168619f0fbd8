#!/usr/bin/env node
// npm run bench [-- --bytes N --repeats R]: runs the virtual-cable benchmarks
// and prints each figure beside its reference, measured in the same run.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { native, packageRoot } from '../src/native.js';
import { GiB } from './lib.js';
import { benchConnectRate } from './connect-rate.js';
import { benchThroughput } from './throughput.js';

const { values } = parseArgs({
  options: { bytes: { type: 'string' }, repeats: { type: 'string' }, out: { type: 'string' } },
});
const bytes = values.bytes ? Number(values.bytes) : GiB;
const repeats = values.repeats ? Number(values.repeats) : 3;

const rows = await benchThroughput(bytes, repeats);
const fmt = (n: number, d = 1) => n.toFixed(d).padStart(9);
console.log(`one connection, ${bytes / (1 << 20)} MiB per run, median of ${repeats}`);
console.log('path      direction     MiB/s   host CPU s/GiB  device CPU s/GiB  JS wakeups');
for (const r of rows) {
  console.log(
    `${r.path.padEnd(9)} ${r.direction.padEnd(12)} ${fmt(r.mibPerSec)} ${fmt(r.hostCpuSecPerGiB, 2)}      ${fmt(r.deviceCpuSecPerGiB, 2)}        ${String(r.jsWakeups).padStart(5)}`,
  );
}
for (const dir of ['to device', 'from device'] as const) {
  const mux = rows.find((r) => r.path === 'mux' && r.direction === dir)!;
  const direct = rows.find((r) => r.path === 'direct' && r.direction === dir)!;
  console.log(`mux/direct ${dir}: ${(mux.mibPerSec / direct.mibPerSec).toFixed(2)}x`);
}
const connect = await benchConnectRate(5);
console.log(`\nconnect cycles (Connect + 1-byte echo + close), sequential: ${connect.connectsPerSec.toFixed(0)}/s through tsmuxd, ${connect.reference.toFixed(0)}/s direct TCP (${(connect.connectsPerSec / connect.reference).toFixed(2)}x)`);
const result = {
  date: new Date().toISOString(),
  node: process.version,
  libusb: native.libusbVersion(),
  bytesPerRun: bytes,
  repeats,
  throughput: rows,
  connectRate: connect,
};
const out = values.out ?? join(packageRoot, 'bench', 'results', 'latest.json');
mkdirSync(join(out, '..'), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`written to ${out}`);
