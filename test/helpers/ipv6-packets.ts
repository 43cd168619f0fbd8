// Hand-made IPv6 packets for tests that play a misbehaving phone on the far
// side of a tunnel: ICMPv6 echo and TCP segments with real checksums (RFC
// 8200 §8.1 pseudo-header), and a parser for what the host's stack answers.
import { isIPv6 } from 'node:net';

export const IPV6_HEADER = 40;
export const NEXT_TCP = 6;
export const NEXT_ICMPV6 = 58;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

/** 16 bytes of an IPv6 address in text form (full or compressed). */
export function ipv6Bytes(text: string): Buffer {
  if (!isIPv6(text)) throw new Error(`${text} is not IPv6`);
  const [head, tail = ''] = text.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = text.includes('::') ? groups(tail) : [];
  const all = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function checksum(src: Buffer, dst: Buffer, next: number, body: Buffer): number {
  const pseudo = Buffer.alloc(40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(body.length, 32);
  pseudo[39] = next;
  let sum = 0;
  const add = (b: Buffer): void => {
    for (let i = 0; i < b.length; i += 2) sum += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
  };
  add(pseudo);
  add(body);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A whole IPv6 packet; `payloadLength` overrides the header's (to lie). */
export function ipv6Packet(src: string, dst: string, next: number, body: Buffer, payloadLength = body.length): Buffer {
  const header = Buffer.alloc(IPV6_HEADER);
  header[0] = 0x60;
  header.writeUInt16BE(payloadLength, 4);
  header[6] = next;
  header[7] = 64;
  ipv6Bytes(src).copy(header, 8);
  ipv6Bytes(dst).copy(header, 24);
  return Buffer.concat([header, body]);
}

export function icmpEchoRequest(src: string, dst: string, id: number, seq: number, data: Buffer): Buffer {
  const body = Buffer.alloc(8 + data.length);
  body[0] = 128; // echo request
  body.writeUInt16BE(id, 4);
  body.writeUInt16BE(seq, 6);
  data.copy(body, 8);
  body.writeUInt16BE(checksum(ipv6Bytes(src), ipv6Bytes(dst), NEXT_ICMPV6, body), 2);
  return ipv6Packet(src, dst, NEXT_ICMPV6, body);
}

export function tcpSegment(src: string, dst: string, sport: number, dport: number, seq: number, flags: number, options = Buffer.alloc(0)): Buffer {
  if (options.length % 4 !== 0) throw new Error('TCP options come in 4-byte words');
  const body = Buffer.alloc(20 + options.length);
  options.copy(body, 20);
  body.writeUInt16BE(sport, 0);
  body.writeUInt16BE(dport, 2);
  body.writeUInt32BE(seq >>> 0, 4);
  body[12] = ((20 + options.length) / 4) << 4;
  body[13] = flags;
  body.writeUInt16BE(65535, 14);
  body.writeUInt16BE(checksum(ipv6Bytes(src), ipv6Bytes(dst), NEXT_TCP, body), 16);
  return ipv6Packet(src, dst, NEXT_TCP, body);
}

export interface ParsedPacket {
  next: number;
  payload: Buffer;
  /** ICMPv6 type, or TCP flags. */
  icmpType?: number;
  tcpFlags?: number;
  tcpPorts?: [number, number];
}

/** Cuts a byte stream into IPv6 packets by payload length; returns the packets and the rest. */
export function splitPackets(stream: Buffer): { packets: ParsedPacket[]; rest: Buffer } {
  const packets: ParsedPacket[] = [];
  let at = 0;
  while (stream.length - at >= IPV6_HEADER) {
    const total = IPV6_HEADER + stream.readUInt16BE(at + 4);
    if (stream.length - at < total) break;
    const next = stream[at + 6];
    const payload = stream.subarray(at + IPV6_HEADER, at + total);
    const p: ParsedPacket = { next, payload };
    if (next === NEXT_ICMPV6) p.icmpType = payload[0];
    if (next === NEXT_TCP) {
      p.tcpFlags = payload[13];
      p.tcpPorts = [payload.readUInt16BE(0), payload.readUInt16BE(2)];
    }
    packets.push(p);
    at += total;
  }
  return { packets, rest: stream.subarray(at) };
}
