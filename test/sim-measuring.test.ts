// The simulated phone's measuring services in C++ (native/sim/test_service.cc),
// reached directly over loopback TCP and a Unix path: the sink hashes what it
// gets, the source's digest matches its bytes, the echo returns everything,
// and a client that leaves mid-stream does not stop the service.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';

import t from 'tap';

import { MuxEngine } from '../src/native/mux-engine.js';
import { NativeError } from '../src/native/addon.js';
import { DIGEST_LENGTH, UNHASHED } from '../src/protocol/measuring.js';
import { readExactly, tempDir } from './helpers/harness.js';

const request = (n: number | bigint, hashed = true) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n) | (hashed ? 0n : UNHASHED));
  return b;
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest();

async function open(address: number | string): Promise<net.Socket> {
  const s = typeof address === 'number' ? net.connect(address, '127.0.0.1') : net.connect(address);
  await once(s, 'connect');
  return s;
}

t.test('sink, source and echo over TCP', async (t) => {
  const engine = new MuxEngine();
  t.teardown(() => engine.close());
  const sink = engine.startTestService('sink') as number;
  const source = engine.startTestService('source') as number;
  const echo = engine.startTestService('echo') as number;
  t.ok([sink, source, echo].every((p) => typeof p === 'number' && p > 0), 'each listens on a loopback port');

  const s = await open(sink);
  t.teardown(() => s.destroy());
  const sizes = [0, 1, 63, 64, 65, 300_000, 1 << 20];
  for (const n of sizes) {
    const body = randomBytes(n);
    // Header and body split at odd places, to exercise the parser's state.
    const all = Buffer.concat([request(n), body]);
    for (let at = 0; at < all.length; at += 7777) s.write(all.subarray(at, at + 7777));
    if (all.length === 8) s.write(Buffer.alloc(0));
    t.same(await readExactly(s, DIGEST_LENGTH), sha(body), `sink: SHA-256 of ${n} bytes`);
  }
  s.write(Buffer.concat([request(5000, false), randomBytes(5000)]));
  t.same(await readExactly(s, DIGEST_LENGTH), Buffer.alloc(DIGEST_LENGTH), 'unhashed: 32 zero bytes');

  for (const n of [0, 100, 1 << 20]) {
    const src = await open(source);
    src.write(request(n));
    const got = await readExactly(src, n + DIGEST_LENGTH);
    t.same(got.subarray(n), sha(got.subarray(0, n)), `source: the digest matches ${n} bytes`);
    src.destroy();
  }
  const fixed = await open(source);
  fixed.write(request(600_000, false));
  const stream = await readExactly(fixed, 600_000 + DIGEST_LENGTH);
  t.same(stream.subarray(600_000), Buffer.alloc(DIGEST_LENGTH), 'unhashed source: zero digest');
  t.same(stream.subarray(262_144, 2 * 262_144), stream.subarray(0, 262_144), 'unhashed source repeats one block');
  fixed.destroy();

  const e = await open(echo);
  const payload = randomBytes(3 << 20);
  e.write(payload);
  t.same(await readExactly(e, payload.length), payload, 'echo returns 3 MiB intact');
  e.destroy();
});

t.test('clients that leave mid-stream, or never read, do not stop a service', async (t) => {
  const engine = new MuxEngine();
  t.teardown(() => engine.close());
  const source = engine.startTestService('source') as number;
  const echo = engine.startTestService('echo') as number;
  const endless = await open(source);
  endless.write(request((1n << 62n) - 1n, false));
  await readExactly(endless, 1 << 20);
  endless.destroy();

  const hog = await open(echo);
  hog.pause();
  hog.write(randomBytes(16 << 20));  // never read back: the echo stops reading instead of buffering it all
  await new Promise((r) => setTimeout(r, 300));

  const again = await open(source);
  again.write(request(1000));
  const got = await readExactly(again, 1000 + DIGEST_LENGTH);
  t.same(got.subarray(1000), sha(got.subarray(0, 1000)), 'the source still serves new connections');
  again.destroy();
  const e = await open(echo);
  e.write('still here');
  t.equal((await readExactly(e, 10)).toString(), 'still here', 'the echo still serves others while one client hogs it');
  e.destroy();
  hog.destroy();
});

t.test('Unix paths and bad arguments', async (t) => {
  const engine = new MuxEngine();
  t.teardown(() => engine.close());
  const path = join(tempDir(t), 'echo.sock');
  t.equal(engine.startTestService('echo', path), path, 'the address is the path');
  const e = await open(path);
  e.write('hi');
  t.equal((await readExactly(e, 2)).toString(), 'hi');
  e.destroy();
  const failure = (run: () => unknown) => {
    try {
      run();
    } catch (err) {
      return err;
    }
    return undefined;
  };
  const badKind = failure(() => engine.startTestService('warp' as never));
  t.ok(badKind instanceof NativeError, 'an unknown kind is a NativeError');
  t.match(badKind, { code: 'ERR_INVALID_ARGUMENT' });
  const inUse = failure(() => engine.startTestService('echo', path));
  t.ok(inUse instanceof NativeError, 'a path in use is a NativeError');
  t.match(inUse, { code: 'ERR_SYSTEM', message: /cannot listen/ });
});
