// Writes the hand-made seed inputs of the native fuzzers into
// test/fuzz/corpus/<target>/. Run it after changing an input format:
//   node test/fuzz/make-corpus.mjs
// Each seed is a valid, ordinary case; the fuzzers mutate from there.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), 'corpus');

const u8 = (v) => [v & 0xff];
const u16 = (v) => [(v >> 8) & 0xff, v & 0xff];
const u32 = (v) => [...u16(v >>> 16), ...u16(v & 0xffff)];

// ---- mux packets ----
function muxV1(protocol, body) {
  return [...u32(protocol), ...u32(8 + body.length), ...body];
}
function muxV2(protocol, body, txSeq = 0, rxSeq = 0xffff) {
  return [...u32(protocol), ...u32(16 + body.length), ...u32(0xfeedface), ...u16(txSeq), ...u16(rxSeq), ...body];
}
function tcp({ sport, dport, seq, ack, flags, window, payload = [] }) {
  return [...u16(sport), ...u16(dport), ...u32(seq), ...u32(ack), 0x50, flags, ...u16(window), 0, 0, 0, 0, ...payload];
}
const text = (s) => [...Buffer.from(s)];
const version = (major) => muxV1(0, [...u32(major), ...u32(0), ...u32(0)]);
const setup = muxV2(2, [7], 0);
const data = (n) => Array.from({ length: n }, (_, i) => (i * 7) & 0xff);
const ackPacket = muxV2(6, tcp({ sport: 62078, dport: 1, seq: 1, ack: 1, flags: 0x10, window: 0x400 }), 1);
const dataPacket = muxV2(6, tcp({ sport: 62078, dport: 1, seq: 1, ack: 1, flags: 0x10, window: 0x400, payload: data(100) }), 2);
const synAck = muxV2(6, tcp({ sport: 62078, dport: 1, seq: 0x1000, ack: 1, flags: 0x12, window: 0x400 }), 3);
const control = muxV2(1, [7, ...text('AppleUSBDeviceMux::setPropertiesGated setting debug level to 7\n')], 4);
const v1Tcp = muxV1(6, tcp({ sport: 1, dport: 62078, seq: 0, ack: 0, flags: 0x02, window: 0x200 }));

const seeds = {
  mux_frame: {
    'version-v1': version(2),
    'setup-v2': setup,
    'ack-v2': ackPacket,
    'data-v2': dataPacket,
    'synack-v2': synAck,
    'control-v2': control,
    'syn-v1': v1Tcp,
  },
};

// ---- reassembler: [config][count][u16 cuts][stream] ----
{
  const stream = [...version(2), ...setup, ...ackPacket, ...dataPacket, ...control];
  const cuts = (list) => list.flatMap((c) => u16(c));
  seeds.reassembler = {
    'whole-stream': [0x00, 0, ...stream],
    'split-4096': [0x00, 3, ...cuts([20, 0x8000 | 50, 17]), ...stream],
    'zlp-64': [0x04, 4, ...cuts([64, 0, 0x8000 | 36, 0]), ...stream],
    'stop-after-2': [0x20, 1, ...cuts([0]), ...stream],
    'small-limit': [0x01, 2, ...cuts([9, 3]), ...stream],
  };
}

// ---- cable descriptor ----
function cableDescriptor({ serial, configs }) {
  const out = [...text('TSMXCBL1'), ...u16(0x05ac), ...u16(0x12a8), ...u16(0x1406), 3, 4, serial.length, ...text(serial), configs.length];
  for (const c of configs) {
    out.push(c.value, c.interfaces.length);
    for (const i of c.interfaces) {
      out.push(i.number, i.cls, i.sub, i.proto, i.eps.length);
      for (const [addr, attr, mps] of i.eps) out.push(addr, attr, ...u16(mps));
    }
  }
  return out;
}
const muxIface = { number: 1, cls: 0xff, sub: 0xfe, proto: 2, eps: [[0x04, 2, 512], [0x85, 2, 512]] };
const ptpIface = { number: 0, cls: 6, sub: 1, proto: 1, eps: [[0x81, 2, 512], [0x02, 2, 512], [0x83, 3, 64]] };
seeds.cable_descriptor = {
  iphone: cableDescriptor({
    serial: '00008030-001A2B3C4D5E6F70',
    configs: [
      { value: 1, interfaces: [ptpIface] },
      { value: 4, interfaces: [ptpIface, muxIface] },
    ],
  }),
  minimal: cableDescriptor({ serial: '', configs: [] }),
  'one-config': cableDescriptor({ serial: 'abc', configs: [{ value: 1, interfaces: [muxIface] }] }),
};

// ---- pseudo-TCP scripts (see test/fuzz/native/pseudo_tcp_fuzz.cc) ----
const OP = { segment: 0, raw: 1, open: 2, write: 3, read: 4, localClose: 5, daemonClose: 6, attach: 7, time: 8, congestion: 9, unplug: 10, version: 11, control: 12, setup: 13, shutdown: 14, endTurn: 15 };
// segment: conn, flag selector (0 ACK, 5 RST, 6 SYN|ACK), seq delta, ack mode, window, length
const seg = (conn, flags, length, window = 0x400, ackMode = 0) => [OP.segment, conn, flags, 0, ackMode, ...u16(window), ...u16(length)];
const hostOpen = (port, isn) => [OP.open, ...u16(port), ...u32(isn), 50];
const deviceSyn = (sport, port, isn, refuse = 0) => [OP.open, ...u16(sport), ...u16(port), ...u32(isn), ...u16(0x400), refuse];
const write = (conn, n) => [OP.write, conn, ...u16(n)];
const read = (conn, n) => [OP.read, conn, ...u16(n)];
seeds.pseudo_tcp = {
  'host-echo': [
    0x00, ...hostOpen(62078, 0x1000), ...seg(0, 6, 0), [OP.attach, 0], ...write(0, 3000),
    ...seg(0, 0, 2000), ...read(0, 1500), ...read(0, 1000), ...seg(0, 0, 0), [OP.time, 0, 10], [OP.localClose, 0],
  ].flat(),
  'host-window-stall': [
    0x04, ...hostOpen(1234, 7), ...seg(0, 6, 0, 0x10), [OP.attach, 0], ...write(0, 60000), ...seg(0, 0, 0, 0x10),
    ...seg(0, 0, 4000, 0x40), ...read(0, 100), [OP.congestion, 1], ...write(0, 100), [OP.congestion, 0], ...seg(0, 0, 0, 0x100),
    [OP.daemonClose, 0],
  ].flat(),
  'host-late-attach-unplug': [
    0x00, ...hostOpen(62078, 0xfffffff0), ...hostOpen(1000, 5), ...seg(0, 6, 0), ...seg(1, 6, 0), ...seg(0, 0, 30000),
    ...seg(1, 5, 0), [OP.unplug], [OP.attach, 0], ...read(0, 40000), [OP.time, 0x10, 0],
  ].flat(),
  'host-v1-timeout': [0x02, ...hostOpen(5, 1), [OP.time, 0, 200], [OP.control, 7, 5, ...text('hello')], [OP.version, 2]].flat(),
  'device-service': [
    0x01, ...deviceSyn(0x1234, 62078, 0x5000), ...seg(0, 0, 0), ...seg(0, 0, 5000), ...read(0, 6000), ...write(0, 60000),
    ...seg(0, 0, 0), ...seg(0, 0, 0, 0x400, 3), [OP.localClose, 0],
  ].flat(),
  'device-refused-and-restart': [
    0x11, ...deviceSyn(1, 22, 9, 1), ...deviceSyn(2, 62078, 10), ...seg(1, 0, 0), ...seg(1, 0, 100), [OP.version, 2],
    [OP.setup, 7], ...deviceSyn(3, 62078, 11), [OP.shutdown],
  ].flat(),
  'device-v1-mps64': [0x13, ...deviceSyn(7, 8, 0x7fffffff), ...seg(0, 0, 0), ...seg(0, 0, 64 - 28), ...read(0, 10), [OP.time, 0x10, 0]].flat(),
};

let total = 0;
for (const [target, files] of Object.entries(seeds)) {
  for (const [name, bytes] of Object.entries(files)) {
    const path = join(root, target, `seed-${name}`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, Buffer.from(bytes));
    total += bytes.length;
  }
}
console.log(`wrote ${Object.values(seeds).reduce((n, f) => n + Object.keys(f).length, 0)} seeds, ${total} bytes`);
