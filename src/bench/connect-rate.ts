// Connection setup rate: usbmuxd Connect cycles per second (open a client
// socket, plist Connect to a device port, read the Result, close), from
// several concurrent workers, against any usbmuxd-compatible daemon. The
// request bytes are built once and the Result is read without a plist parser,
// so the client's own cost stays small next to the daemon's. A cycle may also
// send one byte through the new pipe and wait for the echo's copy before it
// closes (connectEchoCycle): then it counts only Connects that carry data.
import net from 'node:net';

import type { SocketAddress } from '../protocol/address.js';
import { swapPort } from '../protocol/usbmux.js';
import { plistMessage } from '../protocol/plist-message.js';
import { percentile } from './sim-services.js';

const CYCLE_TIMEOUT_MS = 10_000;

/** A plist Connect request (version 1, message 8, tag 1), built once per run. */
export function connectRequest(deviceId: number, port: number): Buffer {
  return plistMessage(1, {
    MessageType: 'Connect',
    DeviceID: deviceId,
    PortNumber: swapPort(port),
    ProgName: 'tsmuxd-bench',
    ClientVersionString: 'tsmuxd bench',
    kLibUSBMuxVersion: 3,
  });
}

export function connectSocket(address: SocketAddress): net.Socket {
  return address.kind === 'unix' ? net.connect(address.path) : net.connect(address.port, address.host);
}

/**
 * One Connect through the daemon. Resolves with the socket, now a pipe to the
 * device port, once the Result is 0; `keep` false closes it at once (the
 * connect-rate cycle).
 */
export function muxConnect(address: SocketAddress, request: Buffer, keep: boolean): Promise<net.Socket> {
  const socket = connectSocket(address);
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`Connect: no Result within ${CYCLE_TIMEOUT_MS} ms`)), CYCLE_TIMEOUT_MS);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      socket.off('close', onClose);
    };
    function fail(err: Error) {
      cleanup();
      socket.destroy();
      reject(err);
    }
    const onClose = () => fail(new Error('Connect: the daemon closed the connection'));
    const onData = (d: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      if (pending.length < 16) return;
      const length = pending.readUInt32LE(0);
      if (length < 16 || length > 65536) return fail(new Error(`Connect: reply length ${length}`));
      if (pending.length < length) return;
      const body = pending.subarray(16, length).toString('utf8');
      const result = /<key>Number<\/key>\s*<integer>(\d+)<\/integer>/.exec(body);
      if (!result) return fail(new Error(`Connect: unexpected reply ${body.slice(0, 200)}`));
      if (result[1] !== '0') return fail(Object.assign(new Error(`Connect: the daemon answered ${result[1]}`), { result: Number(result[1]) }));
      cleanup();
      if (pending.length > length) socket.unshift(pending.subarray(length));
      if (!keep) socket.destroy();
      resolve(socket);
    };
    socket.on('data', onData);
    socket.on('error', fail);
    socket.on('close', onClose);
    socket.once('connect', () => socket.write(request));
  });
}

export interface RateResult {
  perSec: number;
  cycles: number;
  seconds: number;
  concurrency: number;
}

/** `concurrency` workers each repeat `cycle` until `seconds` have passed. */
export async function cycleRate(cycle: () => Promise<unknown>, seconds: number, concurrency: number): Promise<RateResult> {
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let cycles = 0;
  const worker = async () => {
    while (process.hrtime.bigint() < end) {
      await cycle();
      cycles++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  return { perSec: cycles / elapsed, cycles, seconds: elapsed, concurrency };
}

/** The same cycle against a TCP service directly: connect, then close once connected. */
export function directConnect(port: number, host = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

// The byte the next echo cycle sends: it changes per cycle, so an echo
// answering with a stale byte from another connection is caught.
let echoByte = 0;

/**
 * One Connect to an echo port that proves the pipe carries data: one byte
 * out, the same byte back, then close.
 */
export async function connectEchoCycle(address: SocketAddress, request: Buffer): Promise<void> {
  const socket = await muxConnect(address, request, true);
  try {
    await echoOneByte(socket, (echoByte = (echoByte + 1) & 0xff));
  } finally {
    socket.destroy();
  }
}

function echoOneByte(socket: net.Socket, value: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`echo: no byte back within ${CYCLE_TIMEOUT_MS} ms`)), CYCLE_TIMEOUT_MS);
    const onData = (d: Buffer) => {
      if (d.length !== 1) return done(new Error(`echo: ${d.length} bytes back for 1`));
      if (d[0] !== value) return done(new Error(`echo: byte ${d[0]} back for ${value}`));
      done();
    };
    const onClose = () => done(new Error('echo: the connection closed before the byte came back'));
    function done(err?: Error) {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', done);
      if (err) reject(err);
      else resolve();
    }
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', done);
    socket.setNoDelay(true);
    socket.write(Buffer.of(value));
  });
}

export interface TimedCycles extends RateResult {
  /** Each cycle's wall time, from opening the socket to its close. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Like cycleRate, with every cycle timed, and stopping after `count` cycles
 * in all (shared by the workers) or once `seconds` have passed.
 */
export async function timedCycles(
  cycle: () => Promise<unknown>,
  until: { count: number } | { seconds: number },
  concurrency: number,
): Promise<TimedCycles> {
  const start = process.hrtime.bigint();
  const end = 'seconds' in until ? start + BigInt(Math.round(until.seconds * 1e9)) : undefined;
  const times: number[] = [];
  let started = 0;
  const more = () => (end === undefined ? started < (until as { count: number }).count : process.hrtime.bigint() < end);
  const worker = async () => {
    while (more()) {
      started++;
      const t0 = process.hrtime.bigint();
      await cycle();
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  times.sort((a, b) => a - b);
  return {
    perSec: times.length / seconds,
    cycles: times.length,
    seconds,
    concurrency,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    maxMs: times.length ? times[times.length - 1] : NaN,
  };
}
