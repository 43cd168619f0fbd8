// A hostile or broken device on the host's cable. Whatever it sends, the host
// drops that device with a clear code, closes its cable, stays up, and keeps
// serving a healthy phone on the same cable listener. Noise that is not fatal
// (RST storms, stale connections, CONTROL floods) is absorbed or rate limited.
import t, { type Test } from 'tap';

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { LogEntry } from '../src/native/mux-engine.js';
import { packageRoot, type CableDescriptor } from '../src/native/addon.js';
import { RawDevice, startHost, tempDir, TH_ACK, TH_RST, TH_SYN, waitFor, wire, type HostSetup } from './helpers/harness.js';
import {
  attachRawDevice,
  collectFor,
  descriptorBytes,
  healthyPeerWorks,
  rawConnect,
  readUntilUnplugged,
  recvPacket,
  SLOW,
  sleep,
  tcpOf,
  VERSION_REPLY_V2,
  type BurstUnplugTrial,
} from './helpers/wire-helpers.js';

type Detached = { handle: number; code: string; reason: string };

// CableTransport::kMaxTransfer, read from the source the addon was built
// from (it has been both 256 KiB and 64 KiB); the brief's hostile case is
// "more than 256 KiB", which is over the limit either way.
const KMAX_TRANSFER = ((): number => {
  const src = readFileSync(join(packageRoot, 'native', 'usb', 'cable.h'), 'utf8');
  const m = /kMaxTransfer\s*=\s*(\d+)\s*(?:<<\s*(\d+))?\s*;/.exec(src);
  if (!m) throw new Error('cannot find CableTransport::kMaxTransfer in native/usb/cable.h');
  return Number(m[1]) * 2 ** Number(m[2] ?? 0);
})();

/** The common ending: the cable is closed on the device, and a good phone still works. */
async function afterDrop(t: Test, host: HostSetup, dev: RawDevice, handle: number, opts: { expectNothingSent?: boolean } = {}) {
  const end = await readUntilUnplugged(dev.cable);
  t.ok(end.unplugged, 'the raw device sees the cable closed (recv throws ERR_UNPLUGGED)');
  if (end.error) t.fail(`recv threw something else: ${String(end.error)}`);
  if (opts.expectNothingSent ?? true) t.equal(end.transfers.length, 0, 'the host sent nothing more before closing');
  t.equal(host.engine.isReady(handle), false, 'the dropped device is no longer ready');
  t.equal(host.engine.device(handle), undefined, 'nor known to the engine');
  const { echoed, handle: good } = await healthyPeerWorks(t, host);
  t.not(good, handle, 'the healthy phone is a new device');
  t.equal(echoed, 'still alive', 'a healthy phone on the same host cable echoes through port 7');
}

/** Plugs a raw device in, sends `hostile`, expects a detach with `code`. */
async function dropsDevice(t: Test, hostile: (dev: RawDevice) => void, code: string, reason: RegExp) {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  const detached = waitFor<Detached>(host.engine, 'detached', (d) => d.handle === handle, SLOW);
  hostile(dev);
  const d = await detached;
  t.equal(d.code, code, `detached with ${code}`);
  t.match(d.reason, reason, `the reason says why: ${d.reason}`);
  await afterDrop(t, host, dev, handle);
}

const tcpHeader = { sport: 62078, dport: 1, seq: 0, ack: 0, flags: TH_ACK, window: 0x200 };

t.test('mux length shorter than the header', (t) =>
  dropsDevice(t, (dev) => dev.cable.send(wire.encodePacket({ protocol: 6, txSeq: 0, length: 12, tcp: tcpHeader })), 'ERR_MUX_BAD_LENGTH', /shorter than its 16-byte header/));

t.test('mux length above 65535', (t) =>
  dropsDevice(t, (dev) => dev.cable.send(wire.encodePacket({ protocol: 6, txSeq: 0, length: 65536, tcp: tcpHeader })), 'ERR_MUX_BAD_LENGTH', /65536 exceeds 65535/));

t.test('mux length above 65535, announced by a header split over two transfers', (t) =>
  dropsDevice(
    t,
    (dev) => {
      const p = wire.encodePacket({ protocol: 6, txSeq: 0, length: 0x00100000, tcp: tcpHeader });
      dev.cable.send(p.subarray(0, 5));
      dev.cable.send(p.subarray(5));
    },
    'ERR_MUX_BAD_LENGTH',
    /exceeds 65535/,
  ));

t.test('unknown mux protocol', (t) =>
  dropsDevice(t, (dev) => dev.cable.send(wire.encodePacket({ protocol: 3, txSeq: 0, payload: Buffer.from('?') })), 'ERR_MUX_UNKNOWN_PROTOCOL', /unknown mux protocol 3/));

t.test('TCP header with data offset 6', (t) =>
  dropsDevice(
    t,
    (dev) => dev.cable.send(wire.encodePacket({ protocol: 6, txSeq: 0, tcp: { ...tcpHeader, dataOffset: 6 }, payload: Buffer.alloc(4) })),
    'ERR_MUX_BAD_TCP_OFFSET',
    /data offset 6/,
  ));

t.test('TCP body shorter than a TCP header', (t) =>
  dropsDevice(t, (dev) => dev.cable.send(wire.encodePacket({ protocol: 6, txSeq: 0, payload: Buffer.alloc(19) })), 'ERR_MUX_SHORT_BODY', /19 bytes/));

t.test('a transfer larger than 256 KiB', (t) =>
  dropsDevice(t, (dev) => dev.cable.send(Buffer.alloc(256 * 1024 + 1)), 'ERR_CABLE_OVERSIZE_TRANSFER', new RegExp(`cable transfer larger than ${KMAX_TRANSFER} bytes`)));

t.test('a transfer one byte over kMaxTransfer', (t) =>
  dropsDevice(t, (dev) => dev.cable.send(Buffer.alloc(KMAX_TRANSFER + 1)), 'ERR_CABLE_OVERSIZE_TRANSFER', new RegExp(`larger than ${KMAX_TRANSFER} bytes`)));

t.test('a good CONTROL packet and garbage in one transfer: the log line, then the drop', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  const events: string[] = [];
  host.engine.on('log', (l) => {
    if (l.handle === handle && l.text.startsWith('device:')) events.push(`log:${l.text}`);
  });
  const detached = waitFor<Detached>(host.engine, 'detached', (d) => d.handle === handle, SLOW);
  host.engine.on('detached', (d) => d.handle === handle && events.push(`detached:${d.code}`));
  const good = wire.encodePacket({ protocol: 1, txSeq: 0, payload: Buffer.concat([Buffer.from([5]), Buffer.from('before the garbage')]) });
  const bad = wire.encodePacket({ protocol: 0x47455420, txSeq: 1, payload: Buffer.from('/ HTTP/1.1\r\n') });
  dev.cable.send(Buffer.concat([good, bad]));
  t.equal((await detached).code, 'ERR_MUX_UNKNOWN_PROTOCOL');
  t.same(events, ['log:device: before the garbage', 'detached:ERR_MUX_UNKNOWN_PROTOCOL'], 'packets before the garbage are still handled, in order');
  await afterDrop(t, host, dev, handle);
});

t.test('a transfer of exactly kMaxTransfer bytes is accepted', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  let detached: Detached | undefined;
  host.engine.on('detached', (d) => {
    if (d.handle === handle) detached = d;
  });
  const rstsIn = host.engine.stats().rstsIn;
  // RSTs for unknown connections (ignored), kMaxTransfer bytes in all.
  const count = Math.ceil(KMAX_TRANSFER / 60000);
  const sizes = Array.from({ length: count }, (_, i) => Math.floor(KMAX_TRANSFER / count) + (i < KMAX_TRANSFER % count ? 1 : 0));
  const packets = sizes.map((n, i) =>
    wire.encodePacket({ protocol: 6, txSeq: i, tcp: { sport: 9000 + i, dport: 1000, flags: TH_RST }, payload: Buffer.alloc(n - 36, 0x41) }),
  );
  dev.txSeq = sizes.length;
  const transfer = Buffer.concat(packets);
  t.equal(transfer.length, KMAX_TRANSFER);
  dev.cable.send(transfer);
  // Then a packet that must draw an answer, proving the big one was read.
  dev.sendTcp({ sport: 4444, dport: 3, seq: 77, ack: 0, flags: TH_ACK, window: 0x200 });
  const rst = await recvPacket(dev.cable);
  t.ok(rst, 'the host answers the packet after the big transfer');
  t.equal(rst && tcpOf(rst).tcp.flags, TH_RST);
  t.equal(host.engine.stats().rstsIn - rstsIn, count, `all ${count} RSTs inside it were parsed`);
  t.equal(detached, undefined, 'no detach');
  t.ok(host.engine.isReady(handle));
});

t.test('a device that unplugs in the middle of a burst is detached with ERR_UNPLUGGED', async (t) => {
  // Timing-dependent by nature (the close must land while the host drains a
  // queue of transfers), so several trials; run in a child process because a
  // host that misses the unplug cannot be closed.
  const TRIALS = 8;
  const dir = tempDir(t);
  const helpers = new URL('./helpers/wire-helpers.ts', import.meta.url).href;
  const execArgv = process.execArgv.filter((a) => a.includes('typescript'));
  const code = `import(${JSON.stringify(helpers)}).then((m) => m.burstUnplugChild(${JSON.stringify(dir)}, ${TRIALS}))`;
  const child = spawn(process.execPath, [...execArgv, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const [exitCode] = (await once(child, 'exit')) as [number | null];
  clearTimeout(killer);
  t.equal(exitCode, 0, 'the trial process finished');
  const last = out.trim().split('\n').pop() ?? '[]';
  const results = JSON.parse(last.startsWith('[') ? last : '[]') as BurstUnplugTrial[];
  t.same(
    results.map((r) => r.detached?.code ?? `no detach within ${r.waitedMs} ms`),
    Array(TRIALS).fill('ERR_UNPLUGGED'),
    'every trial: the host notices the unplug',
  );
  t.same(
    results.map((r) => r.zlpsIn),
    Array(TRIALS).fill(0),
    'no phantom ZLPs: end-of-file is not a stream of zero-length transfers',
  );
});

t.test('a bad cable descriptor drops the cable before anything opens', async (t) => {
  const host = startHost(t);
  let attached = 0;
  host.engine.on('attached', () => attached++);
  const good = descriptorBytes({});
  const bad: Array<[string, Buffer]> = [
    ['garbage', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['a mux VERSION packet first', VERSION_REPLY_V2()],
    ['truncated by one byte', good.subarray(0, good.length - 1)],
    ['one trailing byte', Buffer.concat([good, Buffer.from([0])])],
    ['speed 0', descriptorBytes({ speed: 0 })],
    ['a non-printable serial', descriptorBytes({}, 'serial\x01')],
  ];
  for (const [what, bytes] of bad) {
    const dev = new RawDevice(host.cable);
    t.teardown(() => dev.close());
    const detached = waitFor<Detached>(host.engine, 'detached', () => true, SLOW);
    dev.cable.send(bytes);
    const d = await detached;
    t.equal(d.code, 'ERR_CABLE_DESCRIPTOR', `${what}: detached with ERR_CABLE_DESCRIPTOR (${d.reason})`);
    const end = await readUntilUnplugged(dev.cable);
    t.ok(end.unplugged, `${what}: the cable is closed`);
    t.equal(end.transfers.length, 0, `${what}: no VERSION was sent`);
  }
  t.equal(attached, 0, 'none of them was attached');
  const { echoed } = await healthyPeerWorks(t, host);
  t.equal(echoed, 'still alive', 'a healthy phone still works');
});

t.test('a non-Apple (or non-mux) descriptor is rejected and never opened', async (t) => {
  const host = startHost(t);
  let attached = 0;
  host.engine.on('attached', () => attached++);
  const cases: Array<[string, Partial<CableDescriptor>, RegExp]> = [
    ['vendor 0x1234', { vendorId: 0x1234 }, /vendor 0x1234 is not Apple/],
    ['Apple product 0x12b0', { productId: 0x12b0 }, /product 0x12b0/],
    ['no mux interface', { configurations: [{ value: 1, interfaces: [{ number: 0, interfaceClass: 6, subclass: 1, protocol: 1, endpoints: [] }] }] }, /usbmux/],
  ];
  for (const [what, overrides, reason] of cases) {
    const dev = new RawDevice(host.cable);
    t.teardown(() => dev.close());
    const rejected = waitFor<{ handle: number; reason: string; descriptor: Required<CableDescriptor> }>(host.engine, 'rejected', () => true, SLOW);
    const detached = waitFor<Detached>(host.engine, 'detached', () => true, SLOW);
    dev.cable.send(descriptorBytes(overrides));
    const r = await rejected;
    t.match(r.reason, reason, `${what}: rejected (${r.reason})`);
    if (overrides.vendorId !== undefined) t.equal(r.descriptor.vendorId, overrides.vendorId, 'the event carries the descriptor');
    const d = await detached;
    t.equal(d.handle, r.handle, `${what}: the same handle is detached`);
    t.equal(d.code, 'ERR_CLOSED', `${what}: closed by the daemon`);
    const end = await readUntilUnplugged(dev.cable);
    t.ok(end.unplugged, `${what}: the host closed the cable`);
    t.equal(end.transfers.length, 0, `${what}: no VERSION (nothing at all) arrived`);
  }
  t.equal(attached, 0, 'no attached event for any of them');
  const { echoed } = await healthyPeerWorks(t, host);
  t.equal(echoed, 'still alive');
});

t.test('a VERSION reply with major 3 drops the device', async (t) => {
  const host = startHost(t);
  const dev = new RawDevice(host.cable);
  t.teardown(() => dev.close());
  const attached = waitFor<{ handle: number }>(host.engine, 'attached', () => true, SLOW);
  dev.sendDescriptor();
  const { handle } = await attached;
  t.ok(await recvPacket(dev.cable), 'VERSION arrives');
  const detached = waitFor<Detached>(host.engine, 'detached', (d) => d.handle === handle, SLOW);
  dev.cable.send(wire.encodePacket({ version: 1, protocol: 0, payload: Buffer.from([0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]) }));
  const d = await detached;
  t.equal(d.code, 'ERR_MUX_BAD_VERSION');
  t.match(d.reason, /version 3\.0/);
  await afterDrop(t, host, dev, handle);
});

t.test('an RST storm for unknown connections is ignored', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  let detached: Detached | undefined;
  host.engine.on('detached', (d) => {
    if (d.handle === handle) detached = d;
  });
  const before = host.engine.stats();
  for (let i = 0; i < 2000; i++) {
    dev.sendTcp({ sport: 1 + (i % 60000), dport: 1 + ((i * 7) % 500), seq: i, ack: i, flags: i % 3 ? TH_RST : TH_RST | TH_ACK, window: 0 }, i % 5 ? undefined : Buffer.from('RST reason\n'));
  }
  // The storm is over when the host has parsed all of it.
  const deadline = Date.now() + SLOW;
  while (host.engine.stats().rstsIn - before.rstsIn < 2000 && Date.now() < deadline) await sleep(10);
  const after = host.engine.stats();
  t.equal(after.rstsIn - before.rstsIn, 2000, 'all 2000 RSTs were read');
  t.equal(after.rstsOut - before.rstsOut, 0, 'none was answered with a RST');
  t.same(await collectFor(dev.cable, 300), [], 'nothing at all went back on the cable');
  t.equal(detached, undefined, 'the device was not dropped');

  const c = await rawConnect(host, dev, handle, 62078);
  t.ok(c.conn > 0, 'the device still takes connections');
  t.equal(tcpOf(c.ack).tcp.flags, TH_ACK);
  const { echoed } = await healthyPeerWorks(t, host);
  t.equal(echoed, 'still alive');
});

t.test('a packet for an unknown connection draws an anonymous RST', async (t) => {
  const host = startHost(t);
  const { dev } = await attachRawDevice(t, host);
  const probes: Array<[string, number, Buffer | undefined]> = [
    ['a bare ACK', TH_ACK, undefined],
    ['data', TH_ACK, Buffer.from('stale bytes')],
    ['a SYN|ACK nobody asked for', TH_SYN | TH_ACK, undefined],
  ];
  let n = 0;
  for (const [what, flags, payload] of probes) {
    const sport = 5000 + n;
    const dport = 40 + n;
    const seq = 0x12345678 + n * 0x1000;
    const txSeq = dev.txSeq;
    dev.sendTcp({ sport, dport, seq, ack: 99, flags, window: 0x200 }, payload);
    const rst = await recvPacket(dev.cable);
    t.ok(rst, `${what}: the host answers`);
    if (!rst) return;
    const d = tcpOf(rst);
    t.same(
      d.tcp,
      { sport: dport, dport: sport, seq: 0, ack: seq, flags: TH_RST, window: 0 },
      `${what}: RST with ports swapped, ack = the incoming seq, seq 0, window 0`,
    );
    t.equal(d.rxSeq, txSeq, 'rx_seq echoes the device tx_seq');
    t.equal(d.payload.length, 0);
    n++;
  }
  t.same(await collectFor(dev.cable, 200), [], 'one RST per packet, nothing else');
});

t.test('anonymous RSTs are rate limited', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  for (let i = 0; i < 1000; i++) dev.sendTcp({ sport: 6000, dport: 1 + i, seq: i, ack: 0, flags: TH_ACK, window: 0x200 });
  const got = await collectFor(dev.cable, 1000);
  const rsts = got.filter((b) => b.length > 0 && tcpOf(b).tcp.flags === TH_RST).length;
  t.ok(rsts > 0, `some RSTs are sent (${rsts})`);
  t.ok(rsts <= 512, `at most two one-second windows' worth of 256 (${rsts} of 1000)`);
  t.ok(host.engine.isReady(handle), 'the device is still up');
});

t.test('a CONTROL flood is rate limited and the host keeps working', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  const logs: LogEntry[] = [];
  host.engine.on('log', (l) => {
    if (l.handle === handle) logs.push(l);
  });
  const before = host.engine.stats();
  const N = 5000;
  for (let i = 0; i < N; i++) {
    dev.cable.send(wire.encodePacket({ protocol: 1, txSeq: dev.txSeq++ & 0xffff, payload: Buffer.concat([Buffer.from([7]), Buffer.from(`flood line ${i}`)]) }));
  }
  const floodLines = () => logs.filter((l) => l.text.startsWith('device: flood line ')).length;
  const deadline = Date.now() + SLOW;
  let stats = host.engine.stats();
  while (Date.now() < deadline) {
    stats = host.engine.stats();
    if (stats.controlIn - before.controlIn === N && floodLines() + (stats.logsSuppressed - before.logsSuppressed) === N) break;
    await sleep(20);
  }
  const suppressed = stats.logsSuppressed - before.logsSuppressed;
  t.equal(stats.controlIn - before.controlIn, N, 'every CONTROL packet was read');
  t.ok(suppressed > 0, `lines were suppressed (${suppressed})`);
  t.equal(floodLines() + suppressed, N, 'every line was either logged or counted as suppressed');
  t.ok(floodLines() < N, `fewer than ${N} lines reached JS (${floodLines()})`);
  t.ok(logs.filter((l) => l.text.startsWith('device: flood')).every((l) => l.level === 'info'), 'type 7 lines are info');

  // After the window, the next line is preceded by the count of what was dropped.
  await sleep(1100);
  const err = waitFor<LogEntry>(host.engine, 'log', (l) => l.handle === handle && l.level === 'error', SLOW);
  dev.cable.send(wire.encodePacket({ protocol: 1, txSeq: dev.txSeq++ & 0xffff, payload: Buffer.concat([Buffer.from([3]), Buffer.from('after the flood\n')]) }));
  t.equal((await err).text, 'device: after the flood', 'a later line gets through, trailing newline stripped');
  const reported = logs
    .map((l) => /^(\d+) device log lines suppressed$/.exec(l.text))
    .filter((m): m is RegExpExecArray => m !== null)
    .reduce((sum, m) => sum + Number(m[1]), 0);
  t.equal(reported, suppressed, 'the "N device log lines suppressed" warnings add up to the suppressed count');

  const c = await rawConnect(host, dev, handle, 62078);
  t.ok(c.conn > 0, 'the flooding device still takes connections');
  const { echoed } = await healthyPeerWorks(t, host);
  t.equal(echoed, 'still alive', 'and another phone works');
});

t.test('CONTROL log levels: 3 error, 5 warning, 7 info, others warning', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  const logs: LogEntry[] = [];
  host.engine.on('log', (l) => {
    if (l.handle === handle && l.text.includes('ctl-')) logs.push(l);
  });
  const send = (type: number, text: string) =>
    dev.cable.send(wire.encodePacket({ protocol: 1, txSeq: dev.txSeq++ & 0xffff, payload: Buffer.concat([Buffer.from([type]), Buffer.from(text)]) }));
  const done = waitFor<LogEntry>(host.engine, 'log', (l) => l.text.includes('ctl-last'), SLOW);
  send(3, 'ctl-error: asyncReadComplete, message was too large (65536 bytes, max = 65535)\n');
  send(5, 'ctl-warning');
  send(7, 'ctl-info\0');
  send(9, 'ctl-unknown');
  send(7, 'ctl-last');
  await done;
  t.same(
    logs.map((l) => [l.level, l.text]),
    [
      ['error', 'device: ctl-error: asyncReadComplete, message was too large (65536 bytes, max = 65535)'],
      ['warning', 'device: ctl-warning'],
      ['info', 'device: ctl-info'],
      ['warning', 'device: unknown CONTROL type 9: ctl-unknown'],
      ['info', 'device: ctl-last'],
    ],
  );
});
