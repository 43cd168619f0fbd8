// Shared pieces of the hostile-peer tests: a hand-driven phone on an
// in-process daemon's cable (so a test can play the device and a usbmuxd
// client at once), a hash-checked transfer with a healthy simulated phone,
// and a device-side sender that respects the host's window.
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { DecodedPacket } from '../../src/native/addon.js';
import { SINK_PORT, SOURCE_PORT } from '../../src/protocol/sim-ports.js';
import { pattern, PacketPort, sinkTransfer, sourceTransfer, TH_ACK, TH_SYN, type TcpFields } from './flow-helpers.js';
import { openClient, RawDevice, waitFor, type HostSetup } from './harness.js';
import { binaryConnect, binaryResult, RawClient, startDaemon, waitUntil, type DaemonSetup } from './usbmuxd-harness.js';
import { recvPacket, SLOW, VERSION_REPLY_V2 } from './wire-helpers.js';

type Teardown = { teardown(fn: () => void | Promise<void>): void };

export interface RawPhone {
  dev: RawDevice;
  port: PacketPort;
  handle: number;
  /** The usbmuxd DeviceID clients use. */
  deviceId: number;
}

/** An in-process daemon with no sims and one cable a raw phone plugs into. */
export async function daemonWithRawPhone(
  t: Teardown,
  options: { connectTimeoutMs?: number; zeroWindowTimeoutMs?: number; serial?: string } = {},
): Promise<{ setup: DaemonSetup; phone: RawPhone; cable: string }> {
  // The cable's path is chosen before the daemon (and its own temp dir) exists.
  const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-hostile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cable = join(dir, 'raw.cable');
  const setup = await startDaemon(t, { sims: 0, cables: [cable], connectTimeoutMs: options.connectTimeoutMs, zeroWindowTimeoutMs: options.zeroWindowTimeoutMs });
  const phone = await plugRawPhone(t, setup, cable, options.serial);
  return { setup, phone, cable };
}

/** Plugs a raw v2 phone into a daemon's cable and waits until clients can see it. */
export async function plugRawPhone(t: Teardown, setup: DaemonSetup, cable: string, serial = '00008101000A1B2C3D4E5F60'): Promise<RawPhone> {
  const engine = setup.daemon.engine;
  const dev = new RawDevice(cable);
  t.teardown(() => dev.close());
  const attached = waitFor<{ handle: number }>(engine, 'attached', () => true, SLOW);
  dev.sendDescriptor(serial);
  const { handle } = await attached;
  if (!(await recvPacket(dev.cable))) throw new Error('no VERSION from the host');
  dev.cable.send(VERSION_REPLY_V2());
  if (!(await recvPacket(dev.cable))) throw new Error('no SETUP from the host');
  const record = await waitUntil(() => setup.daemon.devices.visible().find((d) => d.handle === handle), 'the raw phone to be listed');
  const port = new PacketPort(dev.cable);
  // RawDevice sent nothing in v2 framing yet, so PacketPort's own tx counter is right.
  return { dev, port, handle, deviceId: record.deviceId };
}

export interface RawConnection {
  client?: RawClient;
  /** The host's source port (the device's destination port). */
  hostPort: number;
  devicePort: number;
  /** A TCP header from the device on this connection. */
  reply(fields: { seq: number; ack: number; window: number; flags?: number }): TcpFields;
}

/**
 * A usbmuxd client's Connect to `devicePort`, answered by the raw phone with
 * SYN|ACK and `windowBytes`; resolves after the Result and the host's ACK.
 */
export async function clientConnect(t: Teardown, setup: DaemonSetup, phone: RawPhone, devicePort: number, windowBytes: number): Promise<RawConnection & { client: RawClient }> {
  const client = await RawClient.open(t, setup.socketPath);
  client.send(binaryConnect(1, phone.deviceId, devicePort));
  const syn = await phone.port.expect('the SYN', (p) => p.tcp?.flags === TH_SYN && p.tcp.dport === devicePort, SLOW);
  const hostPort = syn.tcp!.sport;
  const reply = replyFor(devicePort, hostPort);
  phone.port.sendTcp(reply({ seq: 0, ack: 1, window: windowBytes, flags: TH_SYN | TH_ACK }));
  const result = await client.read(20, SLOW);
  if (!result.equals(binaryResult(1, 0))) throw new Error(`Connect answered ${result.toString('hex')}`);
  await phone.port.expect('the handshake ACK', (p) => p.tcp?.flags === TH_ACK && p.tcp.sport === hostPort, SLOW);
  return { client, hostPort, devicePort, reply };
}

/** Builds the device's TCP headers for one connection (window in bytes). */
export function replyFor(devicePort: number, hostPort: number): RawConnection['reply'] {
  return (f) => ({ sport: devicePort, dport: hostPort, seq: f.seq, ack: f.ack, flags: f.flags ?? TH_ACK, window: f.window >> 8 });
}

/** Packets for one connection (by the host's source port) that arrive within `ms`. */
export async function packetsFor(port: PacketPort, hostPort: number, ms: number): Promise<DecodedPacket[]> {
  return (await port.collect(ms)).filter((p) => p.tcp?.sport === hostPort);
}

/**
 * The device sends `data` on a connection as a phone would: never past the
 * host's window, waiting for the host's ACKs. `between` runs after each
 * window's worth (the flood tests put their noise there). Packets for other
 * connections that arrive meanwhile go to `others`.
 */
export async function deviceSend(
  port: PacketPort,
  conn: RawConnection,
  data: Buffer,
  between?: () => void,
  others: DecodedPacket[] = [],
): Promise<void> {
  let sent = 0;
  let acked = 0;
  let window = 64 * 1024;
  const packet = 16 * 1024;
  while (acked < data.length) {
    while (sent < data.length && sent - acked + packet <= window) {
      const n = Math.min(packet, data.length - sent);
      port.sendTcp(conn.reply({ seq: 1 + sent, ack: 1, window: 256 * 1024 }), data.subarray(sent, sent + n));
      sent += n;
    }
    between?.();
    const ack = await port.expect('an ACK for the device data', (p) => p.tcp?.sport === conn.hostPort && p.tcp.ack - 1 > acked, SLOW, others);
    if (ack.tcp!.flags !== TH_ACK) throw new Error(`the host sent flags ${ack.tcp!.flags} on a healthy connection`);
    acked = ack.tcp!.ack - 1;
    window = ack.tcp!.window << 8;
  }
}

/** Hash-checked upload to the sink and download from the source of a healthy phone. */
export async function healthyTransfer(t: Teardown, host: HostSetup, handle: number, bytes: number): Promise<{ up: boolean; down: boolean; ms: number }> {
  const started = Date.now();
  const [{ socket: up }, { socket: down }] = await Promise.all([openClient(t, host, handle, SINK_PORT), openClient(t, host, handle, SOURCE_PORT)]);
  const [sink, source] = await Promise.all([sinkTransfer(up, bytes), sourceTransfer(down, bytes)]);
  return { up: sink.sent.equals(sink.answer), down: source.digest.equals(source.trailer), ms: Date.now() - started };
}

/** Reads a socket to its end; resolves with everything it sent. */
export function readToEnd(socket: net.Socket, timeoutMs = SLOW): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`the socket was not closed within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.resume();
  });
}

export { pattern };
