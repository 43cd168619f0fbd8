// Connection setup rate: usbmuxd Connect cycles per second (open a client
// socket, plist Connect to a device port, read the Result, close), from
// several concurrent workers, against any usbmuxd-compatible daemon. The
// request bytes are built once and the Result is read without a plist parser,
// so the client's own cost stays small next to the daemon's.
import net from 'node:net';

import type { SocketAddress } from '../protocol/address.js';
import { swapPort } from '../protocol/usbmux.js';
import { plistMessage } from '../protocol/plist-message.js';

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
