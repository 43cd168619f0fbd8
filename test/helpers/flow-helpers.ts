// Helpers for the data-flow tests: hashed bulk transfers through the sink and
// source services, and an asynchronous packet reader for a raw cable end (so a
// test can play a hand-driven device or host without blocking the event loop,
// which in-process services and client sockets need).
import { createHash } from 'node:crypto';
import { randomFillSync } from 'node:crypto';
import type net from 'node:net';

import { lengthHeader, readHashed, type HashedRead } from '../../src/bench/verified.js';
import type { DecodedPacket } from '../../src/native/addon.js';
import type { RawCable } from '../../src/native/testing.js';
import { DIGEST_LENGTH } from '../../src/protocol/measuring.js';
import { PROTO_TCP, PROTO_VERSION, recvTransfer, wire } from './harness.js';

export const MiB = 1024 * 1024;
export const KiB = 1024;
export { lengthHeader, readHashed, type HashedRead } from '../../src/bench/verified.js';
export { DIGEST_LENGTH };

export {
  PROTO_CONTROL,
  PROTO_SETUP,
  PROTO_TCP,
  PROTO_VERSION,
  sleep,
  TH_ACK,
  TH_FIN,
  TH_PSH,
  TH_RST,
  TH_SYN,
} from './harness.js';

/** Resolves on 'drain'; rejects if the socket closes or fails first. */
function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new Error('socket closed while waiting for drain'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    socket.on('drain', onDrain);
    socket.on('close', onClose);
    socket.on('error', onError);
  });
}

/**
 * Writes `total` fresh random bytes in 1 MiB chunks, waiting for 'drain'
 * whenever write() says the socket is full. Resolves with their SHA-256.
 */
export async function writeRandom(socket: net.Socket, total: number, chunkSize = MiB): Promise<Buffer> {
  const hash = createHash('sha256');
  let left = total;
  while (left > 0) {
    const n = Math.min(chunkSize, left);
    const chunk = randomFillSync(Buffer.allocUnsafe(n));
    hash.update(chunk);
    left -= n;
    if (!socket.write(chunk)) await drained(socket);
  }
  return hash.digest();
}

export interface SinkResult {
  sent: Buffer;
  answer: Buffer;
  ms: number;
}

/** Sends n random bytes to the sink service; returns our digest and its answer. */
export async function sinkTransfer(socket: net.Socket, n: number): Promise<SinkResult> {
  const started = performance.now();
  const answer = readHashed(socket, 0, DIGEST_LENGTH);
  socket.write(lengthHeader(n));
  const sent = await writeRandom(socket, n);
  const got = await answer;
  return { sent, answer: got.trailer, ms: performance.now() - started };
}

export interface SourceResult extends HashedRead {
  ms: number;
}

/** Asks the source service for n bytes; returns the digest of what arrived and the trailing digest. */
export async function sourceTransfer(
  socket: net.Socket,
  n: number,
  onProgress?: (bytes: number) => void,
): Promise<SourceResult> {
  const started = performance.now();
  const reading = readHashed(socket, n, DIGEST_LENGTH, onProgress);
  socket.write(lengthHeader(n));
  const got = await reading;
  return { ...got, ms: performance.now() - started };
}

export function mibPerSecond(bytes: number, ms: number): number {
  return Math.round((bytes / MiB / (ms / 1000)) * 10) / 10;
}

// ---- raw cable ends ----

export interface Transfer {
  bytes: Buffer;
  packet?: DecodedPacket;
}

/**
 * Reads a raw cable end without blocking the event loop: it polls with a
 * zero timeout and sleeps a millisecond between empty polls. It decodes mux
 * packets (VERSION with the v1 header, the rest with `version`), and checks
 * the ZLP rule on what the other end sends: a transfer whose length is a
 * non-zero multiple of `maxPacketSize` must be followed by a ZLP.
 */
export class PacketPort {
  version: 1 | 2 = 2;
  /** Transfers that broke the ZLP rule, as "length N followed by M". */
  readonly zlpViolations: string[] = [];
  zlpsSeen = 0;
  transfersSeen = 0;
  private owedZlp = 0;
  private txSeq = 0;
  rxSeq = 0xffff;

  constructor(
    readonly cable: RawCable,
    readonly maxPacketSize = 512,
  ) {}

  /** The next transfer (a ZLP is an empty Buffer), or null after timeoutMs. */
  async nextTransfer(timeoutMs: number): Promise<Buffer | null> {
    const b = await recvTransfer(this.cable, timeoutMs);
    if (b === null) return null;
    this.transfersSeen++;
    if (b.length === 0) {
      this.zlpsSeen++;
      this.owedZlp = 0;
    } else {
      if (this.owedZlp > 0) this.zlpViolations.push(`length ${this.owedZlp} followed by ${b.length}`);
      this.owedZlp = b.length % this.maxPacketSize === 0 ? b.length : 0;
    }
    return b;
  }

  decode(bytes: Buffer): DecodedPacket {
    const protocol = bytes.readUInt32BE(0);
    return wire.decodePacket(bytes, protocol === PROTO_VERSION ? 1 : this.version);
  }

  /** The next non-ZLP transfer, decoded, or null after timeoutMs. */
  async nextPacket(timeoutMs: number): Promise<DecodedPacket | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const b = await this.nextTransfer(Math.max(0, deadline - Date.now()));
      if (b === null) return null;
      if (b.length === 0) continue;
      const p = this.decode(b);
      if (this.version === 2 && p.txSeq !== undefined) this.rxSeq = p.txSeq;
      return p;
    }
  }

  /**
   * Reads packets until one passes `match`; the others go to `skipped` (if
   * given). Throws on timeout, naming `what`.
   */
  async expect(
    what: string,
    match: (p: DecodedPacket) => boolean,
    timeoutMs = 5000,
    skipped?: DecodedPacket[],
  ): Promise<DecodedPacket> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = await this.nextPacket(Math.max(0, deadline - Date.now()));
      if (p === null) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      if (match(p)) return p;
      skipped?.push(p);
    }
  }

  /** Every packet that arrives within `ms` (or until `stop` says so). */
  async collect(ms: number, stop?: (p: DecodedPacket) => boolean): Promise<DecodedPacket[]> {
    const out: DecodedPacket[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const p = await this.nextPacket(Math.max(0, deadline - Date.now()));
      if (p === null) return out;
      out.push(p);
      if (stop?.(p)) return out;
    }
  }

  /** Sends one transfer, then a ZLP when its length needs one (unless told not to). */
  sendTransfer(bytes: Buffer, zlp = true): void {
    this.cable.send(bytes);
    if (zlp && bytes.length > 0 && bytes.length % this.maxPacketSize === 0) this.cable.send(Buffer.alloc(0));
  }

  /** Encodes a v2 mux packet with this end's running tx sequence. */
  encode(protocol: number, options: { tcp?: TcpFields; payload?: Buffer } = {}): Buffer {
    return wire.encodePacket({
      version: this.version,
      protocol,
      txSeq: this.txSeq++ & 0xffff,
      rxSeq: this.rxSeq,
      tcp: options.tcp,
      payload: options.payload,
    });
  }

  sendTcp(tcp: TcpFields, payload?: Buffer, zlp = true): Buffer {
    const bytes = this.encode(PROTO_TCP, { tcp, payload });
    this.sendTransfer(bytes, zlp);
    return bytes;
  }

  close(): void {
    this.cable.close();
  }
}

export interface TcpFields {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  /** Scaled: bytes >> 8. */
  window: number;
}

export function controlText(p: DecodedPacket): { type: number; text: string } {
  return { type: p.payload[0] ?? -1, text: p.payload.subarray(1).toString('utf8') };
}

/** A deterministic byte pattern, so data that arrives can be checked in place. */
export function pattern(length: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
