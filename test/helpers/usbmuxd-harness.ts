// Helpers for the client-protocol tests: an in-process daemon with simulated
// phones (in this process too, so tests can tap Trust or pull the cable), a hand-made client socket that reads the daemon's frames byte for
// byte, and hand-built request bytes (independent of src/protocol/usbmux.ts,
// so a mistake there cannot hide in both ends).
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';

import * as plist from 'plist';

import { UsbmuxClient, type UsbmuxDevice } from '../../src/client/usbmux-client.js';
import { silentLogger, type Logger } from '../../src/util/log.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { startPeer, type Peer, type PeerOptions } from '../../src/sim/peer.js';
import { sleep, tempDir, within } from './harness.js';
import { patience } from './sanitizers.js';

export { sleep, tempDir };

type Teardown = { teardown(fn: () => void | Promise<void>): void };

/** Generous: the engine thread, the sims and tap's other jobs share two CPUs. */
export const SLOW = 20_000;

export interface DaemonSetup {
  daemon: Daemon;
  dir: string;
  socketPath: string;
  /** For UsbmuxClient: `UNIX:<socketPath>`. */
  address: string;
  configDir: string;
  /** The simulated phones, on the cable at `dir/sims.cable`. */
  peers: Peer[];
}

export interface StartOptions {
  sims?: number;
  cables?: string[];
  configDir?: string;
  connectTimeoutMs?: number;
  zeroWindowTimeoutMs?: number;
  maxUnreadNotificationBytes?: number;
  /** Options for every simulated phone. */
  sim?: Partial<PeerOptions>;
  /** Run the daemon's preflight (off by default, so tests pair by hand). */
  preflight?: boolean;
  preflightRetryMs?: number;
  /** Real USB (off unless asked: tests must not grab a phone on the machine). */
  usb?: 'off' | 'hotplug' | 'manual';
  log?: Logger;
  /** A pcapng capture from start-up into this file (tsmuxd --capture). */
  capture?: string;
}

/** Polls `check` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitUntil<T>(check: () => T | Promise<T>, what: string, timeoutMs = SLOW, everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + patience(timeoutMs);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(everyMs);
  }
}

export { within };

/** Starts a daemon with `sims` simulated phones and waits until ListDevices shows them all. */
export async function startDaemon(t: Teardown, options: StartOptions = {}): Promise<DaemonSetup> {
  const dir = tempDir(t);
  const socketPath = join(dir, 'usbmuxd.sock');
  const configDir = options.configDir ?? join(dir, 'lockdown');
  const sims = options.sims ?? 1;
  const simCable = join(dir, 'sims.cable');
  const daemon = await Daemon.start({
    address: { kind: 'unix', path: socketPath },
    configDir,
    cables: [...(options.cables ?? []), ...(sims > 0 ? [simCable] : [])],
    connectTimeoutMs: options.connectTimeoutMs,
    zeroWindowTimeoutMs: options.zeroWindowTimeoutMs,
    maxUnreadNotificationBytes: options.maxUnreadNotificationBytes,
    preflight: options.preflight ?? false,
    preflightRetryMs: options.preflightRetryMs,
    usb: options.usb,
    log: options.log ?? silentLogger,
    capture: options.capture,
  });
  t.teardown(() => daemon.stop());
  const peers: Peer[] = [];
  t.teardown(async () => {
    for (const p of peers) await p.close();
  });
  for (let i = 0; i < sims; i++) peers.push(await startPeer({ cable: simCable, ...options.sim }));
  const address = `UNIX:${socketPath}`;
  if (sims > 0) await visibleDevices(address, sims);
  return { daemon, dir, socketPath, address, configDir, peers };
}

/** Waits until a fresh plist client's ListDevices reports at least `count` devices. */
export async function visibleDevices(address: string, count: number, timeoutMs = SLOW): Promise<UsbmuxDevice[]> {
  return waitUntil(async () => {
    const list = await new UsbmuxClient({ address, timeoutMs: 5000 }).listDevices();
    return list.length >= count ? list : null;
  }, `${count} visible device(s)`, timeoutMs, 50);
}

// ---- hand-built requests ----

export const HEADER = 16;

/** A 16-byte little-endian header plus body, built by hand. */
export function frame(version: number, message: number, tag: number, body: Buffer = Buffer.alloc(0), length = HEADER + body.length): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32LE(length >>> 0, 0);
  h.writeUInt32LE(version >>> 0, 4);
  h.writeUInt32LE(message >>> 0, 8);
  h.writeUInt32LE(tag >>> 0, 12);
  return Buffer.concat([h, body]);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export type XmlValue = string | number | boolean | Buffer;

/** An XML plist dict, written the way libusbmuxd writes one. */
export function xmlPlist(dict: Record<string, XmlValue>): string {
  const items = Object.entries(dict).map(([k, v]) => {
    let value: string;
    if (typeof v === 'string') value = `<string>${escapeXml(v)}</string>`;
    else if (typeof v === 'number') value = `<integer>${v}</integer>`;
    else if (typeof v === 'boolean') value = v ? '<true/>' : '<false/>';
    else value = `<data>${v.toString('base64')}</data>`;
    return `\t<key>${escapeXml(k)}</key>\n\t${value}\n`;
  });
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
    `<plist version="1.0">\n<dict>\n${items.join('')}</dict>\n</plist>\n`
  );
}

/** A version-1, message-8 request carrying `body` (an XML dict unless given as bytes). */
export function plistRequest(tag: number, body: Record<string, XmlValue> | Buffer): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(xmlPlist({ ProgName: 'tap-raw', kLibUSBMuxVersion: 3, ...body }), 'utf8');
  return frame(1, 8, tag, bytes);
}

/** Binary Connect: u32 device id LE, u16 port in network order, u16 reserved. */
export function binaryConnect(tag: number, deviceId: number, port: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32LE(deviceId, 0);
  body.writeUInt16BE(port, 4);
  return frame(0, 2, tag, body);
}

/** What a binary Result should look like, byte for byte. */
export function binaryResult(tag: number, result: number): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt32LE(result, 0);
  return frame(0, 1, tag, body);
}

// ---- a hand-made client ----

export interface Frame {
  length: number;
  version: number;
  message: number;
  tag: number;
  body: Buffer;
  /** Header and body as received. */
  raw: Buffer;
}

export type Dict = Record<string, unknown>;

export function parseXmlBody(body: Buffer): Dict {
  return plist.parse(body.toString('utf8')) as Dict;
}

/**
 * A raw socket to the daemon that buffers everything it receives and lets a
 * test take exact byte counts or whole frames, with timeouts.
 */
export class RawClient {
  readonly socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  closed = false;
  /** Total bytes received so far (taken or not). */
  received = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.received += chunk.length;
      this.notify();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  static async open(t: Teardown, path: string): Promise<RawClient> {
    const socket = net.connect(path);
    await within(once(socket, 'connect'), SLOW, `connecting to ${path}`);
    const c = new RawClient(socket);
    t.teardown(() => c.destroy());
    return c;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async waitChange(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    return true;
  }

  /** Bytes buffered and not yet taken. */
  get pending(): number {
    return this.buf.length;
  }

  send(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** Exactly `n` bytes; throws on timeout or if the daemon closes first. */
  async read(n: number, timeoutMs = SLOW): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`the daemon closed the socket after ${this.buf.length} of ${n} bytes`);
      if (!(await this.waitChange(deadline))) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return Buffer.from(out);
  }

  /** The next whole frame, checked only for a sane length. */
  async readFrame(timeoutMs = SLOW): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    const header = await this.read(HEADER, timeoutMs);
    const length = header.readUInt32LE(0);
    if (length < HEADER || length > 0x100000) throw new Error(`frame length ${length} from the daemon is not sane`);
    const body = await this.read(length - HEADER, Math.max(1, deadline - Date.now()));
    return {
      length,
      version: header.readUInt32LE(4),
      message: header.readUInt32LE(8),
      tag: header.readUInt32LE(12),
      body,
      raw: Buffer.concat([header, body]),
    };
  }

  /** The next frame, which must be a plist (message 8); returns it and its dict. */
  async readPlist(timeoutMs = SLOW): Promise<{ frame: Frame; dict: Dict }> {
    const f = await this.readFrame(timeoutMs);
    if (f.message !== 8) throw new Error(`expected a plist frame, got message ${f.message}`);
    return { frame: f, dict: parseXmlBody(f.body) };
  }

  /** Whatever arrives within `ms` (for "nothing more is sent" checks). */
  async drain(ms: number): Promise<Buffer> {
    const deadline = Date.now() + ms;
    while (await this.waitChange(deadline)) {
      // keep collecting
    }
    const out = this.buf;
    this.buf = Buffer.alloc(0);
    return out;
  }

  /** True once the daemon has closed the socket (false on timeout). */
  async waitClosed(timeoutMs = SLOW): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (!(await this.waitChange(deadline))) return false;
    }
    return true;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function hex(b: Buffer): string {
  return b.toString('hex').replace(/(..)/g, '$1 ').trim();
}
