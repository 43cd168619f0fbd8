// Lockdown framing (4-byte big-endian length, then a plist) for tests that
// play a host against the simulated phone's lockdownd and its services.
import type net from 'node:net';

import { isPlistDict, parsePlist, toXml, type PlistDict } from '../../src/protocol/plist-codec.js';
import { SLOW, within } from './usbmuxd-harness.js';

/** One lockdown frame around an XML plist (or around raw bytes, for hostile frames). */
export function lockdownFrame(body: PlistDict | Buffer): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(toXml(body), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([head, bytes]);
}

/** Cuts pushed bytes into plist dictionaries, one at a time. */
export class FrameQueue {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;

  push(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async next(): Promise<PlistDict> {
    for (;;) {
      if (this.buf.length >= 4) {
        const n = this.buf.readUInt32BE(0);
        if (this.buf.length >= 4 + n) {
          const v = parsePlist(this.buf.subarray(4, 4 + n));
          this.buf = this.buf.subarray(4 + n);
          if (!isPlistDict(v)) throw new Error('reply is not a dict');
          return v;
        }
      }
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
}

/** A plaintext lockdown-framed connection over a raw socket. */
export class LockdownConn {
  private readonly frames = new FrameQueue();

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => this.frames.push(d));
    socket.on('close', () => this.frames.close());
    socket.on('error', () => {});
  }

  get closed(): boolean {
    return this.frames.closed;
  }

  send(body: PlistDict | Buffer): void {
    this.socket.write(lockdownFrame(body));
  }

  next(what = 'a message'): Promise<PlistDict> {
    return within(this.frames.next(), SLOW, what);
  }

  request(dict: PlistDict): Promise<PlistDict> {
    this.send(dict);
    return this.next(`reply to ${String(dict.Request)}`);
  }

  waitClosed(): Promise<void> {
    return within(
      new Promise<void>((r) => (this.closed ? r() : this.socket.once('close', () => r()))),
      SLOW,
      'the connection to close',
    );
  }
}
