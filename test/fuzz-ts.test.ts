// The TypeScript fuzzer (test/fuzz/ts) as a regression test: every committed
// corpus file replays without a finding, and each target survives a short
// fixed-seed run. Long runs: `node dist/test/fuzz/ts/run.js --seconds N`.
import t from 'tap';

import { decodeReply, UsbmuxError } from '../src/client/channel.js';
import { MessageType } from '../src/protocol/usbmux.js';
import { corpusDir, loadCorpus } from './fuzz/ts/corpus.js';
import { fuzz, replay } from './fuzz/ts/engine.js';
import { Rng } from './fuzz/ts/rng.js';
import { randomChunks } from './fuzz/ts/target.js';
import { TARGETS } from './fuzz/ts/targets/index.js';

const EXECS = 2000;
// A loaded CI machine is slower than the 100 ms the fuzzer allows; only a
// real blow-up (a hang, an exponential parse) should fail here.
const SLOW_MS = 1000;

t.test('every committed corpus file replays without a finding', async (t) => {
  for (const target of TARGETS) {
    const inputs = loadCorpus(corpusDir(target.name));
    t.ok(inputs.length >= 4, `${target.name}: has a seed corpus`);
    const found = replay(target, inputs, SLOW_MS);
    t.same(found.map((f) => `${f.name}: ${f.kind}: ${f.message.split('\n')[0]}`), [], `${target.name}: no findings`);
  }
});

t.test(`each target survives ${EXECS} mutated inputs (fixed seed)`, async (t) => {
  for (const target of TARGETS) {
    const seeds = loadCorpus(corpusDir(target.name)).map((e) => e.bytes);
    const stats = fuzz(target, seeds, { seed: 0x7e57, maxExecs: EXECS, seconds: 60, coverage: false, slowMs: SLOW_MS });
    t.equal(stats.execs, EXECS, `${target.name}: ran all inputs`);
    t.same(stats.findings.map((f) => `${f.kind}: ${f.message.split('\n')[0]}`), [], `${target.name}: no findings`);
    t.ok(stats.signatures > 3, `${target.name}: reached several outcomes (${stats.signatures})`);
  }
});

t.test('the same seed gives the same run', async (t) => {
  const target = TARGETS.find((x) => x.name === 'xpc')!;
  const seeds = loadCorpus(corpusDir(target.name)).map((e) => e.bytes);
  const a = fuzz(target, seeds, { seed: 42, maxExecs: 300, coverage: false });
  const b = fuzz(target, seeds, { seed: 42, maxExecs: 300, coverage: false });
  t.equal(a.signatures, b.signatures);
  t.equal(a.corpusSize, b.corpusSize);
});

t.test('random chunkings cover every byte in order', async (t) => {
  const rnd = new Rng(1);
  const input = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
  for (let i = 0; i < 200; i++) t.same(Buffer.concat(randomChunks(input, rnd)), input);
});

// Found by the fuzzer: a binary reply shorter than its u32 was a RangeError
// out of the client's reply decoder instead of a protocol error.
t.test('client replies with short bodies are UsbmuxErrors', async (t) => {
  const header = (message: number) => ({ length: 16, version: 0, message, tag: 1 });
  for (const message of [MessageType.Result, MessageType.DeviceRemove, MessageType.DevicePaired]) {
    t.throws(() => decodeReply({ header: header(message), body: Buffer.alloc(3) }), UsbmuxError, `message ${message}`);
  }
  const notADict = Buffer.from('<plist><string>x</string></plist>');
  t.throws(() => decodeReply({ header: { ...header(MessageType.Plist), version: 1 }, body: notADict }), { code: 'ERR_USBMUX_PROTOCOL' });
  t.same(decodeReply({ header: header(MessageType.Result), body: Buffer.from([5, 0, 0, 0]) }), { kind: 'result', tag: 1, result: 5 });
});
