// The two framers. StreamReassembler (host) must find the same packets however
// the device's transfers were split, merged or laced with ZLPs, and must fail
// hard on framing it cannot trust. MessageAssembler (device) ends a message at
// a short transfer or a ZLP, as a USB device controller does.
import t, { type Test } from 'tap';

import { join } from 'node:path';

import { MuxEngine } from '../src/native/mux-engine.js';
import { NativeError } from '../src/native/addon.js';
import { iphoneDescriptor } from '../src/sim/descriptor.js';
import { readExactly, startHost, tempDir, TH_ACK, TH_RST, waitFor, wire } from './helpers/harness.js';
import { attachRawDevice, collectFor, openRawClient, recvPacket, sleep, SLOW, tcpOf, within } from './helpers/wire-helpers.js';


// ---- building packet streams ----

function tcp(payloadLen: number, seq: number, fill: number): Buffer {
  const payload = Buffer.alloc(payloadLen);
  for (let i = 0; i < payloadLen; i++) payload[i] = (fill + i * 7) & 0xff;
  return wire.encodePacket({
    protocol: 6,
    txSeq: seq & 0xffff,
    rxSeq: 0,
    tcp: { sport: 62078, dport: 1, seq: 1 + seq, ack: 1, flags: 0x10, window: 0x200 },
    payload,
  });
}

function control(text: string, seq: number): Buffer {
  return wire.encodePacket({ protocol: 1, txSeq: seq, payload: Buffer.concat([Buffer.from([7]), Buffer.from(text)]) });
}

/** Packets of assorted sizes: tiny, odd, USB-packet multiples, the maximum. */
function assortedPackets(): Buffer[] {
  const sizes = [0, 5, 476, 477, 988, 1, 16348, 16349, 32728, 65535 - 36, 3, 100];
  const out: Buffer[] = [];
  sizes.forEach((n, i) => out.push(tcp(n, i, i * 13)));
  out.splice(3, 0, control('AppleUSBDeviceMux::setPropertiesGated setting debug level to 7', 50));
  out.push(wire.encodePacket({ protocol: 0, payload: Buffer.alloc(12) }));
  return out;
}

/** Packets that add up to exactly 32 KiB. */
function packets32k(): Buffer[] {
  const out: Buffer[] = [];
  let total = 0;
  let i = 0;
  const sizes = [1000, 3000, 36, 8000, 512, 700];
  while (total < 32768) {
    let n = sizes[i % sizes.length];
    if (32768 - total - n < 36) n = 32768 - total; // the last one fills up to 32 KiB
    const p = tcp(n - 36, i, i);
    out.push(p);
    total += p.length;
    i++;
  }
  return out;
}

function chunk(stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += size) out.push(stream.subarray(i, i + size));
  return out;
}

/** Deterministic pseudo-random split points. */
function randomChunks(stream: Buffer, seed: number, max: number): Buffer[] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; ) {
    const n = 1 + (next() % max);
    out.push(stream.subarray(i, i + n));
    i += n;
  }
  return out;
}

function withZlps(transfers: Buffer[]): Buffer[] {
  const out: Buffer[] = [Buffer.alloc(0)];
  for (const tr of transfers) out.push(tr, Buffer.alloc(0), Buffer.alloc(0));
  return out;
}

function feedAll(transfers: Buffer[], headerSize: 8 | 16 = 16): Buffer[] {
  const r = new wire.StreamReassembler(headerSize);
  const got: Buffer[] = [];
  for (const tr of transfers) got.push(...r.feed(tr));
  return got;
}

function samePackets(t: Test, got: Buffer[], expected: Buffer[], what: string): void {
  const lengths = (l: Buffer[]) => l.map((b) => b.length);
  t.same(lengths(got), lengths(expected), `${what}: the same packet boundaries`);
  t.ok(
    got.length === expected.length && got.every((b, i) => b.equals(expected[i])),
    `${what}: the same packet bytes`,
  );
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (e) {
    return e instanceof NativeError ? e.code : `not a NativeError: ${String(e)}`;
  }
}

// ---- StreamReassembler ----

t.test('StreamReassembler: every way of cutting the stream yields the same packets', async (t) => {
  const packets = assortedPackets();
  const stream = Buffer.concat(packets);
  samePackets(t, feedAll(packets), packets, 'one packet per transfer');
  samePackets(t, feedAll([stream]), packets, 'all packets merged in one transfer');
  samePackets(t, feedAll(chunk(stream, 16384)), packets, '16 KiB transfers (usbmuxd USB_MRU)');
  samePackets(t, feedAll(chunk(stream, 4096)), packets, '4096-byte splits (VirtualBox)');
  samePackets(t, feedAll(chunk(stream, 7)), packets, '7-byte splits (the length field straddles transfers)');
  samePackets(t, feedAll(randomChunks(stream, 1, 3000)), packets, 'random splits up to 3000');
  samePackets(t, feedAll(randomChunks(stream, 2, 70000)), packets, 'random splits and merges up to 70000');
  samePackets(t, feedAll(withZlps(chunk(stream, 4096))), packets, '4096-byte splits with ZLPs everywhere');
  samePackets(t, feedAll(withZlps(packets)), packets, 'whole packets with ZLPs everywhere');
});

t.test('StreamReassembler: a packet split across transfers appears only when complete', async (t) => {
  const p = tcp(1000, 0, 1);
  const r = new wire.StreamReassembler(16);
  t.same(r.feed(p.subarray(0, 3)), [], 'three bytes: not even a length yet');
  t.same(r.feed(p.subarray(3, 20)), [], 'past the header: still incomplete');
  t.same(r.feed(Buffer.alloc(0)), [], 'a ZLP in the middle changes nothing');
  t.same(r.feed(p.subarray(20, p.length - 1)), [], 'one byte short');
  const last = r.feed(Buffer.concat([p.subarray(p.length - 1), p.subarray(0, 10)]));
  t.equal(last.length, 1, 'the last byte completes it (and the next packet starts in the same transfer)');
  t.ok(last[0].equals(p));
  const rest = r.feed(p.subarray(10));
  t.equal(rest.length, 1);
  t.ok(rest[0].equals(p));
});

t.test('StreamReassembler: a 32 KiB packet stream in 4096-byte transfers, and byte by byte', async (t) => {
  const packets = packets32k();
  const stream = Buffer.concat(packets);
  t.equal(stream.length, 32768);
  samePackets(t, feedAll(chunk(stream, 4096)), packets, '4096-byte transfers');
  samePackets(t, feedAll(withZlps(chunk(stream, 4096))), packets, '4096-byte transfers with ZLPs');
  samePackets(t, feedAll(chunk(stream, 1)), packets, 'byte at a time');
  samePackets(t, feedAll(withZlps(chunk(stream, 1))), packets, 'byte at a time with a ZLP after each byte');
  // One big device packet (32764 bytes, as observed from real phones) cut at 4096.
  const big = tcp(32728, 9, 3);
  t.equal(big.length, 32764);
  samePackets(t, feedAll(chunk(big, 4096)), [big], 'a 32764-byte packet in 4096-byte pieces');
});

t.test('StreamReassembler: v1 framing (8-byte headers)', async (t) => {
  const packets = [
    wire.encodePacket({ version: 1, protocol: 0, payload: Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]) }),
    wire.encodePacket({ version: 1, protocol: 1 }),
    wire.encodePacket({ version: 1, protocol: 6, tcp: { sport: 7, dport: 1, flags: 0x10 }, payload: Buffer.from('v1 data') }),
  ];
  t.equal(packets[1].length, 8, 'a bare v1 header is a valid 8-byte packet');
  samePackets(t, feedAll(chunk(Buffer.concat(packets), 3), 8), packets, 'v1 packets in 3-byte pieces');
  t.equal(codeOf(() => feedAll([packets[1]], 16)), 'ERR_MUX_BAD_LENGTH', 'but 8 bytes is too short for a v2 header');
});

t.test('StreamReassembler: the largest legal packet passes, one byte more does not', async (t) => {
  const max = tcp(65535 - 36, 1, 1);
  t.equal(max.length, 65535);
  samePackets(t, feedAll(chunk(max, 16384)), [max], 'a 65535-byte packet');
  const tooBig = wire.encodePacket({ protocol: 6, length: 65536, tcp: {} });
  t.equal(codeOf(() => feedAll([tooBig])), 'ERR_MUX_BAD_LENGTH', 'length 65536');
});

t.test('StreamReassembler: garbage fails with the fault.h codes and the stream stays failed', async (t) => {
  const good = tcp(10, 0, 0);
  const cases: Array<[string, Buffer, string]> = [
    ['unknown protocol 3', wire.encodePacket({ protocol: 3, payload: Buffer.alloc(8) }), 'ERR_MUX_UNKNOWN_PROTOCOL'],
    ['unknown protocol 0x01000006', wire.encodePacket({ protocol: 0x01000006, payload: Buffer.alloc(8) }), 'ERR_MUX_UNKNOWN_PROTOCOL'],
    ['length 0', wire.encodePacket({ protocol: 6, length: 0, tcp: {} }), 'ERR_MUX_BAD_LENGTH'],
    ['length 15 (< 16-byte header)', wire.encodePacket({ protocol: 1, length: 15, payload: Buffer.alloc(20) }), 'ERR_MUX_BAD_LENGTH'],
    ['length 65536', wire.encodePacket({ protocol: 6, length: 65536, tcp: {} }), 'ERR_MUX_BAD_LENGTH'],
    ['length 0xFFFFFFFF', wire.encodePacket({ protocol: 6, length: 0xffffffff, tcp: {} }), 'ERR_MUX_BAD_LENGTH'],
  ];
  for (const [what, bad, code] of cases) {
    const r = new wire.StreamReassembler(16);
    t.equal(codeOf(() => r.feed(bad)), code, `${what}: ${code}`);
    t.equal(codeOf(() => r.feed(good)), code, `${what}: a good packet afterwards still fails`);
    t.equal(codeOf(() => r.feed(Buffer.alloc(0))), code, `${what}: even a ZLP fails afterwards`);

    // The same garbage after a good packet, split so the length field arrives last.
    const r2 = new wire.StreamReassembler(16);
    t.same(r2.feed(good).length, 1, `${what}: a good packet first`);
    t.same(r2.feed(bad.subarray(0, 6)), [], `${what}: six bytes are not enough to judge`);
    t.equal(codeOf(() => r2.feed(bad.subarray(6, 8))), code, `${what}: fails as soon as the length field is complete`);
    t.equal(codeOf(() => r2.feed(good)), code, `${what}: and stays failed`);
  }
});

t.test('StreamReassembler: errors are NativeError instances with a message', async (t) => {
  const r = new wire.StreamReassembler(16);
  let err: unknown;
  try {
    r.feed(wire.encodePacket({ protocol: 6, length: 70000, tcp: {} }));
  } catch (e) {
    err = e;
  }
  t.type(err, NativeError);
  t.match((err as NativeError).message, /70000/, 'the message names the bad length');
});

// ---- MessageAssembler ----

const fill = (n: number, v = 0x5a) => Buffer.alloc(n, v);

t.test('MessageAssembler(512): short transfers and ZLPs end messages', async (t) => {
  const m = new wire.MessageAssembler(512);
  let r = m.feed(fill(100));
  t.same(r.messages.map((b) => b.length), [100], 'a short transfer is a whole message');
  t.same(r.faults, []);

  r = m.feed(fill(1024, 1));
  t.same(r.messages, [], 'a 1024-byte transfer (2 x 512) does not end a message');
  r = m.feed(fill(100, 2));
  t.same(r.messages.map((b) => b.length), [1124], 'it merges with the next short transfer');
  t.ok(r.messages[0].equals(Buffer.concat([fill(1024, 1), fill(100, 2)])), 'in order');

  r = m.feed(fill(512, 3));
  t.same(r.messages, [], '512 bytes: wait for more');
  r = m.feed(Buffer.alloc(0));
  t.same(r.messages.map((b) => b.length), [512], 'a ZLP ends a 512-byte message');

  r = m.feed(fill(512));
  t.same(r.messages, []);
  r = m.feed(fill(1536));
  t.same(r.messages, []);
  r = m.feed(Buffer.alloc(0));
  t.same(r.messages.map((b) => b.length), [2048], 'multiples of 512 glue until the ZLP');

  r = m.feed(Buffer.alloc(0));
  t.same(r.messages, [], 'a ZLP with nothing before it is an empty read');
  t.same(r.faults, []);
});

t.test('MessageAssembler(1024): 512 bytes is a short transfer at 1024 max packet size', async (t) => {
  const m = new wire.MessageAssembler(1024);
  t.same(m.feed(fill(512)).messages.map((b) => b.length), [512]);
  t.same(m.feed(fill(1024)).messages, []);
  t.same(m.feed(Buffer.alloc(0)).messages.map((b) => b.length), [1024]);
});

t.test('MessageAssembler(512): packets glued without a ZLP become one message', async (t) => {
  // What a host that forgets the ZLP does to a phone: a 512-byte packet and
  // the next one arrive as one message, which no longer matches its header.
  const a = tcp(476, 0, 1);
  const b = tcp(5, 1, 2);
  t.equal(a.length, 512);
  const m = new wire.MessageAssembler(512);
  t.same(m.feed(a).messages, []);
  const r = m.feed(b);
  t.same(r.messages.map((x) => x.length), [553]);
  t.ok(r.messages[0].equals(Buffer.concat([a, b])));
});

t.test('MessageAssembler(512): more than 65535 bytes is a fault, then it recovers', async (t) => {
  const m = new wire.MessageAssembler(512);
  let early = 0;
  for (let i = 0; i < 128; i++) {
    const r = m.feed(fill(512, i));
    early += r.messages.length + r.faults.length;
  }
  t.equal(early, 0, '128 full transfers end nothing');
  let r = m.feed(Buffer.alloc(0));
  t.same(r.messages, [], 'no message for 65536 bytes');
  t.equal(r.faults.length, 1, 'one fault');
  t.type(r.faults[0], NativeError);
  t.equal(r.faults[0].code, 'ERR_MUX_MESSAGE_TOO_LARGE');
  t.match(r.faults[0].message, /65536 bytes, max = 65535/, 'the phone-style text');

  r = m.feed(fill(100, 9));
  t.same(r.faults, [], 'the next message is clean');
  t.same(r.messages.map((b) => b.length), [100], 'and arrives whole: the assembler recovered');
  t.ok(r.messages[0].equals(fill(100, 9)));

  // Oversize ending with a short transfer.
  for (let i = 0; i < 127; i++) m.feed(fill(512));
  r = m.feed(fill(600));
  t.equal(r.faults.length, 1, '127 x 512 + 600 = 65624 bytes: a fault');
  t.equal(r.faults[0]?.code, 'ERR_MUX_MESSAGE_TOO_LARGE');
  t.same(r.messages, []);
  t.same(m.feed(fill(7)).messages.map((b) => b.length), [7], 'recovered again');

  // One single short transfer over the limit.
  r = m.feed(fill(70001));
  t.equal(r.faults[0]?.code, 'ERR_MUX_MESSAGE_TOO_LARGE', 'a single 70001-byte transfer');
  t.same(r.messages, []);
  t.same(m.feed(fill(3)).messages.map((b) => b.length), [3], 'recovered');
});

t.test('MessageAssembler(512): exactly 65535 bytes is allowed', async (t) => {
  const m = new wire.MessageAssembler(512);
  let early = 0;
  for (let i = 0; i < 127; i++) early += m.feed(fill(512)).messages.length;
  t.equal(early, 0, '127 full transfers end nothing');
  const r = m.feed(fill(511));
  t.same(r.faults, []);
  t.same(r.messages.map((b) => b.length), [65535]);
  const one = m.feed(fill(65535));
  t.same(one.faults, []);
  t.same(one.messages.map((b) => b.length), [65535], 'in a single transfer too');
});

// ---- the same rules on a real cable ----

t.test('host over a cable: device packets split at 4096, merged and laced with ZLPs arrive intact', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  const { socket, sport } = await openRawClient(t, host, dev, handle, 62078);
  // 8 data packets of 16000 payload bytes (< the host's 256 KiB window).
  const data = Buffer.alloc(8 * 16000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  const packets: Buffer[] = [];
  for (let i = 0; i < 8; i++) {
    packets.push(
      wire.encodePacket({
        protocol: 6,
        txSeq: dev.txSeq++ & 0xffff,
        tcp: { sport: 62078, dport: sport, seq: 1 + i * 16000, ack: 1, flags: TH_ACK, window: 0x0200 },
        payload: data.subarray(i * 16000, (i + 1) * 16000),
      }),
    );
  }
  const stream = Buffer.concat(packets);
  // 4096-byte pieces for the first third, then merged pieces (two and a half
  // packets per transfer), then 7-byte crumbs, all with ZLPs between them.
  const third = Math.floor(stream.length / 3);
  const transfers = [
    ...withZlps(chunk(stream.subarray(0, third), 4096)),
    ...withZlps(chunk(stream.subarray(third, 2 * third), 40000)),
    ...withZlps(chunk(stream.subarray(2 * third), 7)),
  ];
  const zlpsSent = transfers.filter((tr) => tr.length === 0).length;
  const zlpsBefore = host.engine.stats().zlpsIn;
  const received = within(readExactly(socket, data.length), SLOW, 'the client bytes');
  for (const tr of transfers) dev.cable.send(tr);
  t.ok((await received).equals(data), 'the client gets every byte, in order');
  // The trailing ZLPs may still be in flight when the last byte lands.
  for (const end = Date.now() + SLOW; host.engine.stats().zlpsIn - zlpsBefore < zlpsSent && Date.now() < end; ) await sleep(10);
  await sleep(50);
  t.equal(host.engine.stats().zlpsIn - zlpsBefore, zlpsSent, `the host counted exactly the ${zlpsSent} ZLPs it was sent`);

  // The host acknowledges what the client took; the last ACK covers it all.
  const deadline = Date.now() + SLOW;
  let lastAck = 0;
  while (lastAck !== 1 + data.length && Date.now() < deadline) {
    const p = await recvPacket(dev.cable, 500);
    if (p) lastAck = tcpOf(p).tcp.ack;
  }
  t.equal(lastAck, 1 + data.length, 'the host ACKs all of it');
  t.ok(host.engine.isReady(handle), 'the device was never dropped');
});

t.test('device over a cable: a host that forgets the ZLP gets its packets glued and rejected', async (t) => {
  // The test plays the host on a raw cable; the engine plays the phone.
  const dir = tempDir(t);
  const path = join(dir, 'cable');
  const listener = new wire.RawCable('listen', path);
  t.teardown(() => listener.close());
  const phone = new MuxEngine();
  t.teardown(() => phone.close());
  phone.attachDeviceRole(path, iphoneDescriptor({ serial: '00008101000A1B2C3D4E5F60' }), { controlLogs: true, defaultLoopback: false });
  const cable = listener.accept(SLOW);
  if (!cable) throw new Error('the phone did not connect');
  t.teardown(() => cable.close());
  const first = await recvPacket(cable);
  t.equal(first?.subarray(0, 8).toString(), 'TSMXCBL1', 'the phone describes itself first');

  let txSeq = 0;
  const send = (spec: Parameters<typeof wire.encodePacket>[0]) => {
    const p = wire.encodePacket({ ...spec, txSeq: txSeq++ });
    cable.send(p);
    return p;
  };
  cable.send(wire.encodePacket({ version: 1, protocol: 0, payload: Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]) }));
  const version = await recvPacket(cable);
  t.same(version && wire.decodePacket(version, 1).payload.readUInt32BE(0), 2, 'the phone answers v2');
  send({ protocol: 2, payload: Buffer.from([7]) });
  const info = await recvPacket(cable);
  t.match(info && wire.decodePacket(info, 2).payload.subarray(1).toString(), /setting debug level to 7/, 'SETUP reaches it');

  const rst512 = () => send({ protocol: 6, tcp: { sport: 3000, dport: 3001, flags: TH_RST }, payload: Buffer.alloc(476) });
  const probe = () => send({ protocol: 6, tcp: { sport: 4000, dport: 4001, seq: 5, flags: TH_ACK }, payload: Buffer.alloc(64) });

  // With the ZLP: the 512-byte RST is ignored, the probe draws an anonymous RST.
  t.equal(rst512().length, 512);
  cable.send(Buffer.alloc(0));
  probe();
  const good = await recvPacket(cable);
  t.ok(good, 'an answer to the probe');
  t.equal(good && tcpOf(good).tcp.flags, TH_RST, 'with the ZLP both packets are understood');
  t.equal(good && tcpOf(good).tcp.ack, 5);

  // Without it: one 612-byte message that matches no header.
  const warned = waitFor<{ text: string }>(phone, 'log', (l) => /dropped a host message/.test(l.text), SLOW);
  rst512();
  probe();
  const answer = await recvPacket(cable);
  t.ok(answer, 'the phone says something');
  const d = answer ? wire.decodePacket(answer, 2) : undefined;
  t.equal(d?.protocol, 1, 'a CONTROL packet, not a RST');
  t.equal(d?.payload[0], 3, 'of type 3 (error)');
  t.match(d?.payload.subarray(1).toString(), /size mismatch \(header says 512, message is 612\)/);
  t.match((await warned).text, /612/, 'the phone engine logs the drop too');
  t.same(await collectFor(cable, 200), [], 'and the probe inside it was not answered');
});
