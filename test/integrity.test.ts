// Bulk data integrity through the whole path: a client socket handed to the
// host engine, the cable, and a simulated phone in a child process whose sink
// hashes what it receives and whose source sends random bytes plus their hash.
import t from 'tap';

import { SINK_PORT, SOURCE_PORT } from '../src/protocol/sim-ports.js';
import { MiB, mibPerSecond, sinkTransfer, sourceTransfer } from './helpers/flow-helpers.js';
import { openClient, readyDevice, startDeviceProcess, startHost } from './helpers/harness.js';
import { scaledForSanitizers } from './helpers/sanitizers.js';

// 256 MiB a connection in npm test; a quarter under ASan, where the bytes are
// the same bytes and only the time is four times longer.
const BIG = scaledForSanitizers(256 * MiB, 4);
const EACH = scaledForSanitizers(32 * MiB, 4);

t.test(`${BIG / MiB} MiB host -> device through one connection reach the sink intact`, async (t) => {
  const host = startHost(t);
  const ready = readyDevice(host.engine);
  await startDeviceProcess(t, host.cable);
  const handle = await ready;
  const { socket } = await openClient(t, host, handle, SINK_PORT);
  const total = BIG;
  const before = host.engine.stats();
  const r = await sinkTransfer(socket, total);
  t.equal(r.answer.length, 32, 'the sink answered with a 32-byte digest');
  t.equal(r.answer.toString('hex'), r.sent.toString('hex'), "the sink's SHA-256 equals the client's");
  const after = host.engine.stats();
  t.equal(after.payloadBytesToDevice - before.payloadBytesToDevice, total + 8, 'the engine carried exactly the request');
  const packets = after.packetsOut - before.packetsOut;
  t.ok(after.zlpsOut - before.zlpsOut <= packets / 100, `full-size packets (49151 bytes) need no ZLP: ${after.zlpsOut - before.zlpsOut} ZLPs for ${packets} packets`);
  t.comment(`host -> device: ${mibPerSecond(total, r.ms)} MiB/s (${total / MiB} MiB in ${Math.round(r.ms)} ms)`);
});

t.test(`${BIG / MiB} MiB device -> host through one connection arrive intact`, async (t) => {
  const host = startHost(t);
  const ready = readyDevice(host.engine);
  await startDeviceProcess(t, host.cable);
  const handle = await ready;
  const { socket } = await openClient(t, host, handle, SOURCE_PORT);
  const total = BIG;
  const before = host.engine.stats();
  const r = await sourceTransfer(socket, total);
  t.equal(r.bytes, total);
  t.equal(r.trailer.length, 32, 'the source sent its digest after the data');
  t.equal(r.digest.toString('hex'), r.trailer.toString('hex'), "the client's SHA-256 equals the source's");
  const after = host.engine.stats();
  t.equal(after.payloadBytesFromDevice - before.payloadBytesFromDevice, total + 32, 'the engine carried exactly the answer');
  t.comment(`device -> host: ${mibPerSecond(total, r.ms)} MiB/s (${total / MiB} MiB in ${Math.round(r.ms)} ms)`);
});

t.test(`8 parallel connections each way, ${EACH / MiB} MiB each, all intact`, async (t) => {
  const host = startHost(t);
  const ready = readyDevice(host.engine);
  await startDeviceProcess(t, host.cable);
  const handle = await ready;
  const each = EACH;
  const pairs = 8;
  const sinks = await Promise.all(Array.from({ length: pairs }, () => openClient(t, host, handle, SINK_PORT)));
  const sources = await Promise.all(Array.from({ length: pairs }, () => openClient(t, host, handle, SOURCE_PORT)));
  t.equal(new Set([...sinks, ...sources].map((c) => c.conn)).size, pairs * 2, 'every connection has its own id');
  const started = performance.now();
  const [up, down] = await Promise.all([
    Promise.all(sinks.map((c) => sinkTransfer(c.socket, each))),
    Promise.all(sources.map((c) => sourceTransfer(c.socket, each))),
  ]);
  const ms = performance.now() - started;
  up.forEach((r, i) => t.equal(r.answer.toString('hex'), r.sent.toString('hex'), `sink connection ${i}: digests match`));
  down.forEach((r, i) => {
    t.equal(r.bytes, each);
    t.equal(r.digest.toString('hex'), r.trailer.toString('hex'), `source connection ${i}: digests match`);
  });
  const stats = host.engine.stats();
  t.ok(stats.connectionsActive >= pairs * 2, 'all connections were still open at the end');
  t.comment(`parallel: ${mibPerSecond(each * pairs * 2, ms)} MiB/s aggregate (${(each * pairs * 2) / MiB} MiB in ${Math.round(ms)} ms)`);
});
