// Connection setup rate: full usbmuxd cycles per second (open a client socket,
// plist Connect to the simulated phone's echo port, read the Result, write one
// byte, read its echo, close), one after another, beside the same cycle made
// directly against the phone's echo TCP service, measured in the same run.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { silentLogger } from '../src/log.js';
import { Daemon } from '../src/server/daemon.js';
import { ECHO_PORT } from '../src/sim/ports.js';
import { startEcho } from '../src/sim/services/echo.js';

const WARMUP_CYCLES = 25;
const CYCLE_TIMEOUT_MS = 5_000;
const ONE = Buffer.from([0x5a]);

/** A usbmuxd plist Connect request (version 1, message 8), tag 1. */
function connectRequest(deviceId: number, port: number): Buffer {
  const swapped = ((port & 0xff) << 8) | ((port >> 8) & 0xff);  // the port goes in network order
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
    '<plist version="1.0"><dict>' +
    '<key>MessageType</key><string>Connect</string>' +
    `<key>DeviceID</key><integer>${deviceId}</integer>` +
    `<key>PortNumber</key><integer>${swapped}</integer>` +
    '<key>ProgName</key><string>connect-rate</string>' +
    '<key>ClientVersionString</key><string>tsmuxd bench</string>' +
    '<key>kLibUSBMuxVersion</key><integer>3</integer>' +
    '</dict></plist>\n';
  const body = Buffer.from(xml, 'utf8');
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16 + body.length, 0);
  header.writeUInt32LE(1, 4);  // version: plist
  header.writeUInt32LE(8, 8);  // message: plist
  header.writeUInt32LE(1, 12);  // tag
  return Buffer.concat([header, body]);
}

/** Runs one socket conversation; `step` returns true when it is done. */
function conversation(
  socket: net.Socket,
  onConnect: () => void,
  step: (data: Buffer) => boolean,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => finish(new Error(`${what}: no answer within ${CYCLE_TIMEOUT_MS} ms`)), CYCLE_TIMEOUT_MS);
    socket.once('connect', onConnect);
    socket.on('data', (d: Buffer) => {
      try {
        if (step(d)) finish();
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.once('error', (err) => finish(new Error(`${what}: ${err.message}`)));
    socket.once('close', () => finish(new Error(`${what}: closed early`)));
  });
}

/** Through the daemon: connect, Connect, Result, one byte there and back, close. */
function muxCycle(socketPath: string, request: Buffer): Promise<void> {
  const socket = net.connect(socketPath);
  let pending: Buffer = Buffer.alloc(0);
  let connected = false;
  return conversation(
    socket,
    () => socket.write(request),
    (d) => {
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      if (!connected) {
        if (pending.length < 16) return false;
        const length = pending.readUInt32LE(0);
        if (pending.length < length) return false;
        const body = pending.subarray(16, length).toString('utf8');
        const result = /<key>Number<\/key>\s*<integer>(\d+)<\/integer>/.exec(body);
        if (!result) throw new Error(`Connect: unexpected reply ${body}`);
        if (result[1] !== '0') throw new Error(`Connect: the daemon answered ${result[1]}`);
        connected = true;
        pending = pending.subarray(length);
        socket.write(ONE);
      }
      if (pending.length === 0) return false;
      if (pending.length > 1 || pending[0] !== ONE[0]) throw new Error('echo: wrong bytes came back');
      return true;
    },
    'daemon cycle',
  );
}

/** Directly to the echo service: connect, one byte there and back, close. */
function directCycle(port: number): Promise<void> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  return conversation(
    socket,
    () => socket.write(ONE),
    (d) => {
      if (d.length > 1 || d[0] !== ONE[0]) throw new Error('echo: wrong bytes came back');
      return true;
    },
    'direct cycle',
  );
}

/** Sequential cycles for `ms`; returns how many and how long they took. */
async function cyclesFor(ms: number, cycle: () => Promise<void>): Promise<{ count: number; ns: bigint }> {
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(ms * 1e6));
  let count = 0;
  let now = start;
  while (now < end) {
    await cycle();
    count++;
    now = process.hrtime.bigint();
  }
  return { count, ns: now - start };
}

/** The sim's own echo service port, if the daemon exposes its phones. */
function simEchoPort(daemon: Daemon): number | undefined {
  const at = daemon.simServices()[0]?.[ECHO_PORT];
  return typeof at === 'number' ? at : undefined;
}

async function visibleDevice(daemon: Daemon, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [d] = daemon.devices.visible();
    if (d) return d.deviceId;
    if (Date.now() > deadline) throw new Error('the simulated phone did not become visible');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Sequential full usbmuxd connect cycles per second against an in-process
 * daemon with one simulated phone, and the same cycle made directly against
 * the phone's echo TCP service (`reference`). The two alternate in one-second
 * slices so that both see the same machine conditions.
 */
export async function benchConnectRate(seconds = 5): Promise<{ connectsPerSec: number; reference: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-bench-connect-'));
  const socketPath = join(dir, 'usbmuxd.sock');
  const daemon = await Daemon.start({
    address: { kind: 'unix', path: socketPath },
    configDir: join(dir, 'lockdown'),
    sims: 1,
    log: silentLogger,
  });
  let standalone: net.Server | undefined;
  try {
    const deviceId = await visibleDevice(daemon);
    let echoPort = simEchoPort(daemon);
    if (echoPort === undefined) {
      // The same service code, in the same process, if the phones are not reachable.
      const echo = await startEcho();
      standalone = echo.server;
      echoPort = echo.address as number;
    }
    const port = echoPort;
    const request = connectRequest(deviceId, ECHO_PORT);
    const mux = () => muxCycle(socketPath, request);
    const direct = () => directCycle(port);

    for (let i = 0; i < WARMUP_CYCLES; i++) {
      await mux();
      await direct();
    }
    const totalMs = seconds * 1000;
    const slices = Math.max(1, Math.round(seconds));
    const sliceMs = totalMs / slices;
    let muxCount = 0;
    let muxNs = 0n;
    let directCount = 0;
    let directNs = 0n;
    for (let i = 0; i < slices; i++) {
      // Alternate which goes first, so neither always follows the other's teardown.
      const order = i % 2 === 0 ? (['mux', 'direct'] as const) : (['direct', 'mux'] as const);
      for (const which of order) {
        const r = await cyclesFor(sliceMs, which === 'mux' ? mux : direct);
        if (which === 'mux') {
          muxCount += r.count;
          muxNs += r.ns;
        } else {
          directCount += r.count;
          directNs += r.ns;
        }
      }
    }
    return {
      connectsPerSec: muxCount / (Number(muxNs) / 1e9),
      reference: directCount / (Number(directNs) / 1e9),
    };
  } finally {
    await daemon.stop();
    if (standalone) await new Promise<void>((r) => standalone!.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
}
