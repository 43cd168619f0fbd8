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

// ---- tunnel: IPv6 packets (fd00::1 is the phone, fd00::2 us) ----
const ula = (last) => [0xfd, 0, ...Array(13).fill(0), last];
const linkLocal = (last) => [0xfe, 0x80, ...Array(13).fill(0), last];
const allNodes = [0xff, 0x02, ...Array(13).fill(0), 1];
function ipv6(nextHeader, payload, { src = ula(1), dst = ula(2), hopLimit = 64 } = {}) {
  return [0x60, 0, 0, 0, ...u16(payload.length), nextHeader, hopLimit, ...src, ...dst, ...payload];
}
// A TCP segment; the checksum is left to the lwip_input harness (bit 12).
const TCP = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 };
function tcpSegment({ sport, dport, seq = 0, ack = 0, flags, window = 0xffff, options = [], payload = [] }) {
  const off = 5 + options.length / 4;
  return [...u16(sport), ...u16(dport), ...u32(seq), ...u32(ack), off << 4, flags, ...u16(window), 0, 0, 0, 0,
    ...options, ...payload];
}
const mssOption = (mss) => [2, 4, ...u16(mss)];
const synOptions = (mss) => [...mssOption(mss), 1, 3, 3, 7, 4, 2, 1, 1]; // MSS, NOP + window scale 7, SACK permitted + 2 NOPs
const icmp6 = (type, code, body) => [type, code, 0, 0, ...body];

// ---- cdtunnel_stream: [config][count][u16 cuts][stream] ----
{
  const body = text('{"clientParameters":{"address":"fd00::2","netmask":"ffff:ffff:ffff:ffff::","mtu":16000},"serverAddress":"fd00::1","type":"serverHandshakeResponse","serverRSDPort":58783}');
  const frame = [...text('CDTunnel'), ...u16(body.length), ...body];
  const syn = ipv6(6, tcpSegment({ sport: 58783, dport: 50000, flags: TCP.syn | TCP.ack, options: synOptions(1340) }));
  const dataSeg = ipv6(6, tcpSegment({ sport: 58783, dport: 50000, seq: 1, ack: 1, flags: TCP.ack | TCP.psh, payload: data(600) }));
  const echo = ipv6(58, icmp6(128, 0, [0, 1, 0, 1, ...data(32)]));
  const packets = [...syn, ...dataSeg, ...echo];
  const big = ipv6(6, tcpSegment({ sport: 1, dport: 2, flags: TCP.ack, payload: data(3800) }));
  const cuts = (list) => list.flatMap((c) => u16(c));
  seeds.cdtunnel_stream = {
    'frame-and-packets': [0x00, 0, ...frame, ...packets],
    'small-records': [0x00, 4, ...cuts([0, 4, 0x8000 | 19, 99]), ...frame, ...packets],
    'configure-next-turn': [0x40, 2, ...cuts([0x8000 | (frame.length + 9), 0x8000 | 700]), ...frame, ...packets],
    'big-packets-repeated': [0x3f, 1, ...cuts([0x3fff]), ...frame, ...big],
    'partial-packet-at-end': [0x00, 0, ...frame, ...syn, ...dataSeg.slice(0, 50)],
    'empty-body': [0x00, 0, ...text('CDTunnel'), 0, 0, ...echo],
    'body-over-limit': [0x00, 0, ...text('CDTunnel'), ...u16(4097), ...body],
    'not-cdtunnel': [0x00, 1, ...cuts([3]), ...text('CDTunnex'), 0, 2, 0x7b, 0x7d],
    'not-ipv6-after-frame': [0x00, 0, ...frame, ...echo, 0x45, ...Array(39).fill(0)],
  };
}

// ---- lwip_input: [flags][u16 mtu][u16 bytes/4 to send] then [u16 prefix][packet]... ----
// prefix: length | 0x1000 fix the checksum | 0x2000 fd00::1 -> fd00::2 and the
// TCP sequence and ack numbers | time before the packet (0x4000 one round of
// the stack's timer, 0x8000 100 rounds, 0xc000 tcp_tmr).
{
  const FIX = 0x3000;
  const ROUND = 0x4000, R100 = 0x8000, TMR = 0xc000;
  const pkt = (bytes, prefix = FIX) => [...u16(prefix | bytes.length), ...bytes];
  const toPhone = (fields) => ipv6(6, tcpSegment({ sport: 62078, dport: 50000, ...fields }));
  const toListener = (fields) => ipv6(6, tcpSegment({ sport: 40000, dport: 58783, ...fields }));
  const ack = TCP.ack;
  seeds.lwip_input = {
    // The connecting pcb: SYN|ACK, our data (64 KiB) acknowledged, then FIN.
    'connect-send-fin': [0x14, 0, 0, ...u16(0x4000),
      ...pkt(toPhone({ flags: TCP.syn | ack, options: synOptions(15940) })),
      ...pkt(toPhone({ flags: ack })), ...pkt(toPhone({ flags: ack }), FIX | ROUND),
      ...pkt(toPhone({ flags: ack | TCP.psh, payload: data(300) }), FIX | ROUND),
      ...pkt(toPhone({ flags: ack }), FIX | R100), ...pkt(toPhone({ flags: ack | TCP.fin }), FIX | TMR),
      ...pkt(toPhone({ flags: ack }), FIX | R100)],
    // The listener at MTU 1280: a connection that echoes, then closes.
    'listen-echo-1280': [0x29, 0, 0, 0, 0,
      ...pkt(toListener({ seq: 1000, flags: TCP.syn, options: synOptions(1440) })),
      ...pkt(toListener({ flags: ack })),
      ...pkt(toListener({ flags: ack | TCP.psh, payload: data(1000) })),
      ...pkt(toListener({ flags: ack }), FIX | ROUND), ...pkt(toListener({ flags: ack | TCP.fin })),
      ...pkt(toListener({ flags: ack }), FIX | ROUND)],
    // Out of order data, a window of 0, a reset.
    'listen-ooseq-rst': [0x08, 0, 0, 0, 0,
      ...pkt(toListener({ seq: 7, flags: TCP.syn, options: synOptions(536) })),
      ...pkt(toListener({ flags: ack, window: 0 })),
      ...pkt(toListener({ seq: 5000, flags: ack, payload: data(200) }), 0x1000),
      ...pkt(toListener({ flags: ack, payload: data(100) })),
      ...pkt(toListener({ flags: TCP.rst | ack }), FIX | TMR)],
    // The SYN is never answered: retransmissions, then the connect gives up.
    'connect-timeout': [0x00, 0, 0, 0, 0, ...Array(30).fill(pkt(ipv6(59, []), R100)).flat()],
    // ICMPv6: an echo, a neighbor solicitation for fd00::2, a router
    // advertisement with an MTU option, a packet too big.
    icmp: [0x02, 0, 0, 0, 0,
      ...pkt(ipv6(58, icmp6(128, 0, [0x12, 0x34, 0, 1, ...data(64)]))),
      ...pkt(ipv6(58, icmp6(135, 0, [0, 0, 0, 0, ...ula(2), 1, 1, 2, 0, 0, 0, 0, 1]), { hopLimit: 255 })),
      ...pkt(ipv6(59, []), R100),
      ...pkt(ipv6(58, icmp6(134, 0, [64, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, ...u32(1300)]),
        { src: linkLocal(1), dst: allNodes, hopLimit: 255 }), 0x1000),
      ...pkt(ipv6(58, icmp6(2, 0, [...u32(1280), ...ipv6(6, tcpSegment({ sport: 50000, dport: 62078, flags: TCP.syn }), { src: ula(2), dst: ula(1) })])))],
    // Extension headers in front of TCP: hop-by-hop (PadN), destination
    // options, a routing header with no segments left, a one-fragment packet.
    'extension-headers': [0x20, 0, 0, 0, 0,
      ...pkt(ipv6(0, [60, 0, 1, 4, 0, 0, 0, 0, 43, 0, 1, 4, 0, 0, 0, 0, 44, 0, 0, 0, 0, 0, 0, 0,
        6, 0, 0, 0, 0, 0, 0, 1, ...tcpSegment({ sport: 40000, dport: 58783, flags: TCP.syn })])),
      ...pkt(ipv6(60, [6, 0, 0xc2, 4, 0, 0, 0, 0, ...tcpSegment({ sport: 40000, dport: 58783, flags: ack })]))],
    // The largest MTU; the connecting pcb sends through it.
    'mtu-65535': [0x17, ...u16(64255), ...u16(0x8000),
      ...pkt(toPhone({ flags: TCP.syn | ack, options: synOptions(65475) })),
      ...pkt(toPhone({ flags: ack }), FIX | ROUND), ...pkt(toPhone({ flags: ack }), FIX | ROUND)],
  };
}

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
