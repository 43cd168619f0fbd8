// Byte vectors from the mux reference (§3.2, §3.5, Appendix A): the codec
// produces and parses them exactly, and the host puts exactly these bytes on
// a real cable, with a ZLP after every packet that fills whole USB packets.
import t from 'tap';

import { NativeError } from '../src/native/addon.js';
import { RawDevice, startHost, TH_ACK, TH_RST, TH_SYN, waitFor, wire } from './helpers/harness.js';
import { attachRawDevice, collectFor, openRawClient, recvPacket, recvTransfer, SLOW, tcpOf, VERSION_REPLY_V2 } from './helpers/wire-helpers.js';

const hex = (s: string) => Buffer.from(s.replace(/[^0-9a-fA-F]/g, ''), 'hex');

// §3.2 step 1: VERSION in a v1 header (proto 0, len 20, major 2, minor 0, pad 0).
const VERSION = hex('00 00 00 00 | 00 00 00 14 | 00 00 00 02 | 00 00 00 00 | 00 00 00 00');
// §3.2 step 3: SETUP, tx_seq 0, rx_seq 0xFFFF, one byte 0x07.
const SETUP = hex('00 00 00 02 | 00 00 00 11 | FE ED FA CE | 00 00 | FF FF | 07');
// §3.5: SYN sport 1 -> 62078, seq 0, ack 0, offset 5, window 0x0200 (131072);
// the outer sequence fields filled in as the host sends them after SETUP.
const SYN_131072 = hex(
  '00 00 00 06 | 00 00 00 24 | FE ED FA CE | 00 01 | FF FF || 00 01 F2 7E | 00 00 00 00 | 00 00 00 00 | 50 02 | 02 00 | 00 00 | 00 00',
);
// Appendix A: data sport 1 -> 62078, seq 1, ack 1, flags ACK, 5 payload bytes.
const DATA_41 = hex(
  '00 00 00 06 | 00 00 00 29 | FE ED FA CE | 00 03 | 00 02 || 00 01 F2 7E | 00 00 00 01 | 00 00 00 01 | 50 10 | 02 00 | 00 00 | 00 00 || 68 65 6c 6c 6f',
);

t.test('codec: VERSION (v1 header)', async (t) => {
  const enc = wire.encodePacket({ version: 1, protocol: 0, payload: hex('00000002 00000000 00000000') });
  t.same(enc, VERSION, 'encodePacket gives the reference bytes');
  const d = wire.decodePacket(VERSION, 1);
  t.equal(d.protocol, 0);
  t.equal(d.length, 20);
  t.equal(d.magic, undefined, 'a v1 header has no magic');
  t.equal(d.txSeq, undefined, 'a v1 header has no sequence fields');
  t.same(d.payload, hex('00000002 00000000 00000000'), 'the 12-byte version body (major 2)');
});

t.test('codec: SETUP (v2 header, tx 0, rx 0xFFFF, 0x07)', async (t) => {
  const enc = wire.encodePacket({ version: 2, protocol: 2, txSeq: 0, rxSeq: 0xffff, payload: Buffer.from([7]) });
  t.equal(enc.length, 17);
  t.same(enc, SETUP, 'encodePacket gives the reference bytes');
  const d = wire.decodePacket(SETUP, 2);
  t.equal(d.protocol, 2);
  t.equal(d.length, 17);
  t.equal(d.magic, 0xfeedface);
  t.equal(d.txSeq, 0);
  t.equal(d.rxSeq, 0xffff);
  t.same(d.payload, Buffer.from([7]));
});

t.test('codec: SYN from §3.5 (sport 1 -> 62078, window 131072)', async (t) => {
  const enc = wire.encodePacket({
    protocol: 6,
    txSeq: 1,
    rxSeq: 0xffff,
    tcp: { sport: 1, dport: 62078, seq: 0, ack: 0, flags: TH_SYN, window: 131072 >> 8 },
  });
  t.equal(enc.length, 36);
  t.same(enc, SYN_131072, 'encodePacket gives the reference bytes');
  t.equal(enc[16 + 12], 0x50, 'data offset 5, written as 0x50');
  const d = wire.decodePacket(SYN_131072, 2);
  t.equal(d.protocol, 6);
  t.equal(d.length, 36);
  t.equal(d.txSeq, 1);
  t.equal(d.rxSeq, 0xffff);
  t.same(d.tcp, { sport: 1, dport: 62078, seq: 0, ack: 0, flags: TH_SYN, window: 0x0200 });
  t.equal(d.payload.length, 0);
});

t.test('codec: Appendix A data packet (41 bytes, seq 1 ack 1, ACK)', async (t) => {
  const enc = wire.encodePacket({
    protocol: 6,
    txSeq: 3,
    rxSeq: 2,
    tcp: { sport: 1, dport: 62078, seq: 1, ack: 1, flags: TH_ACK, window: 0x0200 },
    payload: Buffer.from('hello'),
  });
  t.equal(enc.length, 41);
  t.same(enc, DATA_41, 'encodePacket gives the reference bytes');
  const d = wire.decodePacket(DATA_41, 2);
  t.equal(d.length, 0x29);
  t.equal(d.txSeq, 3);
  t.equal(d.rxSeq, 2);
  t.same(d.tcp, { sport: 1, dport: 62078, seq: 1, ack: 1, flags: 0x10, window: 0x0200 });
  t.equal(d.payload.toString(), 'hello');
});

t.test('codec: decodePacket refuses what does not match its header', async (t) => {
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'no error';
    } catch (e) {
      return e instanceof NativeError ? e.code : `not a NativeError: ${String(e)}`;
    }
  };
  t.equal(code(() => wire.decodePacket(DATA_41.subarray(0, 40), 2)), 'ERR_MUX_BAD_LENGTH', 'one byte short of the length field');
  t.equal(code(() => wire.decodePacket(DATA_41.subarray(0, 10), 2)), 'ERR_MUX_BAD_LENGTH', 'shorter than the header');
  t.equal(
    code(() => wire.decodePacket(wire.encodePacket({ protocol: 9, payload: Buffer.alloc(4) }), 2)),
    'ERR_MUX_UNKNOWN_PROTOCOL',
  );
  t.equal(
    code(() => wire.decodePacket(wire.encodePacket({ protocol: 6, tcp: { dataOffset: 6 } }), 2)),
    'ERR_MUX_BAD_TCP_OFFSET',
  );
  t.equal(code(() => wire.decodePacket(wire.encodePacket({ protocol: 6, payload: Buffer.alloc(19) }), 2)), 'ERR_MUX_SHORT_BODY');
});

t.test('real wire: VERSION, SETUP, SYN, ACK exactly as the reference (default 256 KiB window)', async (t) => {
  const host = startHost(t);
  const dev = new RawDevice(host.cable);
  t.teardown(() => dev.close());
  const attached = waitFor<{ handle: number }>(host.engine, 'attached', () => true, SLOW);
  dev.sendDescriptor();
  const { handle } = await attached;
  const ready = waitFor<{ handle: number; version: number }>(host.engine, 'ready', (r) => r.handle === handle, SLOW);

  const version = await recvTransfer(dev.cable);
  t.same(version, VERSION, 'the first transfer is the VERSION vector');
  t.equal(await recvTransfer(dev.cable, 200), null, 'no ZLP after a 20-byte packet, and no SETUP before the reply');

  dev.cable.send(VERSION_REPLY_V2());
  const setup = await recvTransfer(dev.cable);
  t.same(setup, SETUP, 'after the VERSION reply: the SETUP vector (tx 0, rx 0xFFFF)');
  t.equal((await ready).version, 2);

  const pending = host.engine.connect(handle, 62078, SLOW);
  const syn = await recvTransfer(dev.cable);
  const expectSyn = hex(
    '00 00 00 06 | 00 00 00 24 | FE ED FA CE | 00 01 | FF FF || 00 01 F2 7E | 00 00 00 00 | 00 00 00 00 | 50 02 | 04 00 | 00 00 | 00 00',
  );
  t.same(syn, expectSyn, 'SYN: tx_seq 1, sport 1, seq 0 ack 0, window field 0x0400 (256 KiB >> 8)');
  const s = tcpOf(syn!);
  t.equal(s.txSeq, 1);
  t.equal(s.tcp.window, (256 * 1024) >> 8);

  // The device answers SYN|ACK with its own tx_seq 0.
  dev.sendTcp({ sport: 62078, dport: 1, seq: 0, ack: 1, flags: TH_SYN | TH_ACK, window: 0x0200 });
  const conn = await pending;
  t.ok(conn > 0, 'connect resolved with a connection id');
  const ack = await recvTransfer(dev.cable);
  const expectAck = hex(
    '00 00 00 06 | 00 00 00 24 | FE ED FA CE | 00 02 | 00 00 || 00 01 F2 7E | 00 00 00 01 | 00 00 00 01 | 50 10 | 04 00 | 00 00 | 00 00',
  );
  t.same(ack, expectAck, 'ACK: tx_seq 2, rx_seq = the device tx_seq (0), seq 1 ack 1, flags ACK');
  const a = tcpOf(ack!);
  t.equal(a.tcp.seq, 1);
  t.equal(a.tcp.ack, 1);
  t.equal(a.tcp.flags, TH_ACK);
  t.equal(await recvTransfer(dev.cable, 200), null, 'nothing else (no ZLP after 36 bytes)');
});

t.test('real wire: with a 131072-byte window the SYN is byte-for-byte §3.5', async (t) => {
  const host = startHost(t, { window: 131072 });
  const { dev, handle, version, setup } = await attachRawDevice(t, host);
  t.same(version, VERSION);
  t.same(setup, SETUP);
  const pending = host.engine.connect(handle, 62078, SLOW);
  const syn = await recvPacket(dev.cable);
  t.same(syn, SYN_131072);
  dev.sendTcp({ sport: 62078, dport: 1, seq: 0, ack: 0, flags: TH_RST, window: 0 });
  const err = (await pending.catch((e: unknown) => e)) as NativeError;
  t.equal(err.code, 'ECONNREFUSED', 'a RST answering the SYN refuses the connect');
});

t.test('real wire: an odd window is rounded down to whole 256-byte units', async (t) => {
  const host = startHost(t, { window: 100_000 });
  const { dev, handle } = await attachRawDevice(t, host);
  const pending = host.engine.connect(handle, 7, SLOW).catch((e: unknown) => e);
  const syn = tcpOf((await recvPacket(dev.cable))!);
  t.equal(syn.tcp.window, Math.floor(100_000 / 256), 'window field = bytes >> 8');
  dev.sendTcp({ sport: 7, dport: syn.tcp.sport, seq: 0, ack: 0, flags: TH_RST, window: 0 });
  await pending;
});

t.test('real wire: a ZLP follows every packet whose length is a multiple of 512', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  // Pipelined bytes go out in packets of min(window room, max payload), so
  // their sizes are exact: 476 -> a 512-byte packet.
  const first = Buffer.alloc(476, 0x61);
  const zlpsBefore = host.engine.stats().zlpsOut;
  const { socket, sport } = await openRawClient(t, host, dev, handle, 62078, 0x0200, first);

  const p512 = await recvTransfer(dev.cable);
  t.equal(p512?.length, 512, 'a data packet of exactly 512 bytes (16 + 20 + 476)');
  const d512 = tcpOf(p512!);
  t.same(
    { sport: d512.tcp.sport, dport: d512.tcp.dport, seq: d512.tcp.seq, ack: d512.tcp.ack, flags: d512.tcp.flags },
    { sport, dport: 62078, seq: 1, ack: 1, flags: TH_ACK },
  );
  t.same(d512.payload, first);
  const zlp = await recvTransfer(dev.cable);
  t.ok(zlp !== null && zlp.length === 0, 'the next transfer is a ZLP (empty Buffer)');

  // 477 bytes -> 513: no ZLP.
  socket.write(Buffer.alloc(477, 0x62));
  const p513 = await recvTransfer(dev.cable);
  t.equal(p513?.length, 513, 'a 513-byte packet');
  t.equal(tcpOf(p513!).tcp.seq, 1 + 476);
  t.equal(await recvTransfer(dev.cable, 300), null, 'no ZLP after 513 bytes');

  // 988 bytes -> 1024: a multiple of 512 that is not 512 itself.
  socket.write(Buffer.alloc(988, 0x63));
  const p1024 = await recvTransfer(dev.cable);
  t.equal(p1024?.length, 1024);
  const zlp2 = await recvTransfer(dev.cable);
  t.ok(zlp2 !== null && zlp2.length === 0, 'a ZLP after 1024 bytes');
  t.equal(host.engine.stats().zlpsOut - zlpsBefore, 2, 'stats count exactly the two ZLPs');
});

t.test('real wire: the largest packet the host sends is 49151 bytes, so no ZLP follows it', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  // 0x0400 window field = 256 KiB of room, so the max payload (49115) limits.
  const bytes = Buffer.alloc(49115 + 100);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i & 0xff;
  await openRawClient(t, host, dev, handle, 62078, 0x0400, bytes);
  const big = await recvTransfer(dev.cable);
  t.equal(big?.length, 49151, 'one byte under USB_MTU (16 + 20 + 49115): it ends with a short packet');
  t.same(tcpOf(big!).payload, bytes.subarray(0, 49115));
  const rest = await recvTransfer(dev.cable);
  t.equal(rest?.length, 136, 'the next transfer is the rest, not a ZLP');
  t.equal(tcpOf(rest!).tcp.seq, 1 + 49115);
  t.same(tcpOf(rest!).payload, bytes.subarray(49115));
  t.same(await collectFor(dev.cable, 200), [], 'nothing more');
});
