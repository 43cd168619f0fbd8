// Helpers for wire-level tests: a raw device end that can be read without
// blocking the JS thread (so engine events keep flowing while a test waits
// for a transfer), a full handshake with generous timeouts, a hand-answered
// connect, and a check that a healthy simulated phone still works on a host.
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';

import { NativeError, type DecodedPacket } from '../../src/native/addon.js';
import type { RawCable } from '../../src/native/testing.js';
import { iphoneDescriptor } from '../../src/sim/descriptor.js';
import { startPeer } from '../../src/sim/peer.js';
import { ECHO_PORT } from '../../src/protocol/sim-ports.js';
import { openClient, RawDevice, readExactly, recvTransfer, sleep, TH_ACK, TH_SYN, waitFor, within, wire, type HostSetup } from './harness.js';

export { recvTransfer, sleep };

type Teardown = { teardown(fn: () => void): void };

/** Generous default for anything that waits on the engine's thread. */
export const SLOW = 20_000;

export { within };

/** Like recvTransfer, but skips ZLPs. */
export async function recvPacket(cable: RawCable, timeoutMs = SLOW): Promise<Buffer | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await recvTransfer(cable, Math.max(0, deadline - Date.now()));
    if (b === null || b.length > 0) return b;
  }
}

export interface UnplugResult {
  /** True when recv threw ERR_UNPLUGGED before the timeout. */
  unplugged: boolean;
  /** Anything else recv threw. */
  error?: unknown;
  /** Transfers still read before the end (ZLPs included, as empty buffers). */
  transfers: Buffer[];
}

/** Reads until the cable reports that the other end closed it. */
export async function readUntilUnplugged(cable: RawCable, timeoutMs = SLOW): Promise<UnplugResult> {
  const deadline = Date.now() + timeoutMs;
  const transfers: Buffer[] = [];
  for (;;) {
    let b: Buffer | null;
    try {
      b = await recvTransfer(cable, Math.max(0, deadline - Date.now()));
    } catch (err) {
      if (err instanceof NativeError && err.code === 'ERR_UNPLUGGED') return { unplugged: true, transfers };
      return { unplugged: false, error: err, transfers };
    }
    if (b === null) return { unplugged: false, transfers };
    transfers.push(b);
  }
}

/** Every transfer that arrives within `ms` (ZLPs included). */
export async function collectFor(cable: RawCable, ms: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return out;
    const b = await recvTransfer(cable, left);
    if (b === null) return out;
    out.push(b);
  }
}

export const VERSION_REPLY_V2 = () =>
  wire.encodePacket({ version: 1, protocol: 0, payload: Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]) });

export interface RawAttach {
  dev: RawDevice;
  handle: number;
  /** The host's VERSION and SETUP, exactly as they came off the cable. */
  version: Buffer;
  setup: Buffer;
}

/**
 * Plugs a raw device into the host: descriptor, `attached`, VERSION/SETUP as a
 * v2 phone, `ready`. The device's own tx_seq counter starts at 0.
 */
export async function attachRawDevice(t: Teardown, host: HostSetup, serial = '00008101000A1B2C3D4E5F60'): Promise<RawAttach> {
  const dev = new RawDevice(host.cable);
  t.teardown(() => dev.close());
  const attached = waitFor<{ handle: number }>(host.engine, 'attached', () => true, SLOW);
  dev.sendDescriptor(serial);
  const { handle } = await attached;
  const ready = waitFor<{ handle: number }>(host.engine, 'ready', (r) => r.handle === handle, SLOW);
  const version = await recvPacket(dev.cable);
  if (!version) throw new Error('no VERSION from the host');
  dev.cable.send(VERSION_REPLY_V2());
  const setup = await recvPacket(dev.cable);
  if (!setup) throw new Error('no SETUP from the host');
  await ready;
  return { dev, handle, version, setup };
}

export interface RawConnect {
  conn: number;
  syn: Buffer;
  ack: Buffer;
  /** The host's source port for this connection. */
  sport: number;
}

/**
 * engine.connect() answered by hand: waits for the SYN, replies SYN|ACK
 * (seq 0, ack 1, the given window field) and reads the host's ACK.
 */
export async function rawConnect(host: HostSetup, dev: RawDevice, handle: number, port: number, windowField = 0x0200): Promise<RawConnect> {
  const pending = host.engine.connect(handle, port, SLOW);
  const syn = await recvPacket(dev.cable);
  if (!syn) throw new Error('no SYN from the host');
  const d = wire.decodePacket(syn, 2);
  if (!d.tcp || d.tcp.flags !== TH_SYN || d.tcp.dport !== port) throw new Error(`expected a SYN to ${port}, got ${JSON.stringify(d.tcp)}`);
  dev.sendTcp({ sport: port, dport: d.tcp.sport, seq: 0, ack: 1, flags: TH_SYN | TH_ACK, window: windowField });
  const conn = await pending;
  const ack = await recvPacket(dev.cable);
  if (!ack) throw new Error('no ACK from the host after SYN|ACK');
  return { conn, syn, ack, sport: d.tcp.sport };
}

/** A client socket whose peer is handed to the engine for a hand-answered connect. */
export async function openRawClient(
  t: Teardown,
  host: HostSetup,
  dev: RawDevice,
  handle: number,
  port: number,
  windowField = 0x0200,
  pipelined?: Buffer,
): Promise<RawConnect & { socket: net.Socket }> {
  const path = join(host.dir, `raw-client-${Math.random().toString(36).slice(2)}`);
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const socket = net.connect(path);
  t.teardown(() => socket.destroy());
  const [serverSide] = await accepted;
  server.close();
  const c = await rawConnect(host, dev, handle, port, windowField);
  host.engine.adoptSocket(c.conn, serverSide, pipelined);
  return { ...c, socket };
}

/** Decodes a v2 TCP packet and returns its TCP fields (throws if it is not TCP). */
export function tcpOf(packet: Buffer): DecodedPacket & { tcp: NonNullable<DecodedPacket['tcp']> } {
  const d = wire.decodePacket(packet, 2);
  if (!d.tcp) throw new Error(`protocol ${d.protocol} is not TCP`);
  return d as DecodedPacket & { tcp: NonNullable<DecodedPacket['tcp']> };
}

/**
 * Plugs a simulated phone into the same host cable and proves it works: it
 * reaches `ready` and an echo round trip on port 7 comes back intact.
 */
export async function healthyPeerWorks(t: Teardown, host: HostSetup, payload = 'still alive'): Promise<{ handle: number; echoed: string }> {
  const ready = waitFor<{ handle: number }>(host.engine, 'ready', () => true, SLOW);
  const peer = await startPeer({ cable: host.cable });
  t.teardown(() => peer.close());
  const { handle } = await ready;
  const { socket } = await openClient(t, host, handle, ECHO_PORT);
  socket.write(payload);
  const echoed = (await within(readExactly(socket, Buffer.byteLength(payload)), SLOW, 'the echo')).toString();
  return { handle, echoed };
}

/** The iPhone descriptor with fields overridden, for hostile descriptors. */
export function descriptorBytes(overrides: Partial<ReturnType<typeof iphoneDescriptor>>, serial = '00008101000A1B2C3D4E5F60'): Buffer {
  return wire.encodeCableDescriptor({ ...iphoneDescriptor({ serial }), ...overrides });
}

// ---- a device that unplugs in the middle of a burst (run in a child process) ----

export interface BurstUnplugTrial {
  /** The detach event, or null when none came within the wait. */
  detached: { code: string; reason: string } | null;
  waitedMs: number;
  /** ZLPs the host counted; the device sent none. */
  zlpsIn: number;
}

/**
 * One trial: a device queues `packets` small (v1-framed, pre-handshake) RSTs
 * behind its descriptor, waits for the host's VERSION (so the host is busy
 * draining the queue) and closes its end. Returns what the host reported.
 * When the host never reports, its engine is left running (it cannot be
 * closed safely), so run this in a process of its own.
 */
export async function burstUnplugTrial(dir: string, packets = 4000, waitMs = 5000): Promise<{ trial: BurstUnplugTrial; close(): void }> {
  const { MuxEngine } = await import('../../src/native/mux-engine.js');
  const engine = new MuxEngine();
  const cable = join(dir, `cable-${Math.random().toString(36).slice(2)}`);
  engine.listenCable(cable);
  const dev = new RawDevice(cable);
  engine.on('attached', () => {
    dev.cable.recv(waitMs); // the VERSION: the host is reading now
    dev.close();
  });
  const detached = waitFor<{ code: string; reason: string }>(engine, 'detached', () => true, waitMs);
  dev.sendDescriptor();
  const rst = wire.encodePacket({ version: 1, protocol: 6, tcp: { sport: 1, dport: 2, flags: 0x04 } });
  for (let i = 0; i < packets; i++) dev.cable.send(rst);
  const started = Date.now();
  const d = await detached.catch(() => null);
  return {
    trial: { detached: d && { code: d.code, reason: d.reason }, waitedMs: Date.now() - started, zlpsIn: engine.stats().zlpsIn },
    close: () => engine.close(),
  };
}

/** Child-process entry: runs `trials` trials, prints one JSON line, exits. */
export async function burstUnplugChild(dir: string, trials: number): Promise<never> {
  const results: BurstUnplugTrial[] = [];
  for (let i = 0; i < trials; i++) {
    const { trial, close } = await burstUnplugTrial(dir);
    results.push(trial);
    if (!trial.detached) break; // a stuck engine cannot be closed; stop here
    close();
  }
  process.stdout.write(JSON.stringify(results) + '\n');
  process.exit(0);
}
