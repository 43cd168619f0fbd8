// Shared plumbing for the data-plane tests: temp paths, a host engine on a
// cable, a simulated phone in a child process, client sockets handed through
// the mux, and a hand-driven raw device for hostile-peer tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { openLoopbackClient } from '../../src/native/loopback-client.js';
import { MuxEngine, type MuxEngineOptions } from '../../src/native/mux-engine.js';
import { native, packageRoot } from '../../src/native/addon.js';
import { nativeTesting, type RawCable } from '../../src/native/testing.js';
import { iphoneDescriptor } from '../../src/sim/descriptor.js';
import { killOnExit } from './daemon-process.js';
import { patience } from './sanitizers.js';

export const wire = nativeTesting().wire;

export function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `p`, or a timeout error naming `what` (the deadline stretched under ASan). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  ms = patience(ms);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves with the first `event` whose payload passes `match`. */
export function waitFor<T>(
  emitter: NodeJS.EventEmitter,
  event: string,
  match: (value: T) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<T> {
  timeoutMs = patience(timeoutMs);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}`));
    }, timeoutMs);
    const listener = (value: T) => {
      if (!match(value)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(value);
    };
    emitter.on(event, listener);
  });
}

export interface HostSetup {
  engine: MuxEngine;
  cable: string;
  dir: string;
}

export function startHost(t: { teardown(fn: () => void): void }, options?: MuxEngineOptions): HostSetup {
  const dir = tempDir(t);
  const cable = join(dir, 'cable');
  const engine = new MuxEngine(options);
  engine.listenCable(cable);
  t.teardown(() => engine.close());
  return { engine, cable, dir };
}

/** A simulated phone (sink, source, echo) in its own process. */
export async function startDeviceProcess(
  t: { teardown(fn: () => void): void },
  cable: string,
  args: string[] = [],
  /** The node that runs it (test/arm64: an arm64 node under qemu-user), and its environment. */
  node = process.execPath,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ChildProcess> {
  const script = join(packageRoot, 'dist', 'src', 'cli', 'sim-peer-main.js');
  const child = killOnExit(
    spawn(node, [script, '--cable', cable, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    }),
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`device process exited with ${code} before it was ready`);
    }),
  ])) as [string];
  const status = JSON.parse(line) as { ready: boolean };
  if (!status.ready) throw new Error(`device process said ${line}`);
  return child;
}

/** Waits until the host has a ready device, returns its handle. */
export async function readyDevice(engine: MuxEngine, timeoutMs = 10_000): Promise<number> {
  const r = await waitFor<{ handle: number }>(engine, 'ready', () => true, timeoutMs);
  return r.handle;
}

/**
 * A connected client socket whose other end has been handed to the engine as
 * the client of a mux connection to `port`, as the daemon does after Connect.
 */
export async function openClient(
  t: { teardown(fn: () => void): void },
  host: HostSetup,
  handle: number,
  port: number,
  pipelined?: Buffer,
): Promise<{ socket: net.Socket; conn: number }> {
  const client = await openLoopbackClient(host.engine, handle, port, host.dir, pipelined);
  t.teardown(() => client.socket.destroy());
  return client;
}

/** Reads exactly `n` bytes from a socket. */
export function readExactly(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= n) {
        cleanup();
        const all = Buffer.concat(chunks);
        if (all.length > n) socket.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`socket ended after ${got} of ${n} bytes`));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  });
}

export const TH_FIN = 0x01;
export const TH_SYN = 0x02;
export const TH_RST = 0x04;
export const TH_PSH = 0x08;
export const TH_ACK = 0x10;

export const PROTO_VERSION = 0;
export const PROTO_CONTROL = 1;
export const PROTO_SETUP = 2;
export const PROTO_TCP = 6;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The next transfer on a raw cable (an empty Buffer is a ZLP), or null after
 * `timeoutMs`. Polls, so JS events are delivered while it waits. Throws what
 * recv throws (ERR_UNPLUGGED once the other end closed the cable).
 */
export async function recvTransfer(cable: RawCable, timeoutMs = 20_000): Promise<Buffer | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = cable.recv(0);
    if (b !== null) return b;
    if (Date.now() >= deadline) return null;
    await sleep(1);
  }
}

/**
 * A device driven packet by packet over a raw cable end: it sends the
 * descriptor, answers the handshake and then does whatever a test tells it.
 */
export class RawDevice {
  readonly cable: RawCable;
  txSeq = 0;
  constructor(path: string) {
    this.cable = new wire.RawCable('connect', path);
  }

  sendDescriptor(serial = '00008101000A1B2C3D4E5F60'): void {
    this.cable.send(wire.encodeCableDescriptor(iphoneDescriptor({ serial })));
  }

  /** Receives the next non-ZLP transfer (or null on timeout). */
  recvPacket(timeoutMs = 2000): Buffer | null {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      const b = this.cable.recv(left);
      if (b === null) return null;
      if (b.length > 0) return b;
    }
  }

  /** Completes VERSION/SETUP as a v2 phone would. */
  handshake(): void {
    const version = this.recvPacket();
    if (!version) throw new Error('no VERSION from the host');
    this.cable.send(wire.encodePacket({ version: 1, protocol: 0, payload: Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]) }));
    const setup = this.recvPacket();
    if (!setup) throw new Error('no SETUP from the host');
  }

  sendTcp(tcp: { sport: number; dport: number; seq: number; ack: number; flags: number; window: number }, payload?: Buffer): void {
    this.cable.send(wire.encodePacket({ version: 2, protocol: 6, txSeq: this.txSeq++ & 0xffff, tcp, payload }));
  }

  close(): void {
    this.cable.close();
  }
}
