// The host side of lockdownd (device port 62078): framed plist requests
// answered one at a time, StartSession's in-band TLS on the same socket (the
// device is the TLS server), StopSession back to plaintext (reference
// §1.7.5), and StartService. Every wait has a deadline; a reply that is not a
// lockdown plist, a TLS failure or a silent device each give a typed
// LockdownError and end this connection, never a hang.
import type { Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';

import { isPlistDict, type PlistDict, type PlistValue } from '../protocol/plist-codec.js';
import { LOCKDOWN_CLOSED, LOCKDOWN_PROTOCOL, LOCKDOWN_TIMEOUT, LOCKDOWN_TLS, LockdownError } from './errors.js';
import { decodeBody, encodeFrame, FrameReader, TLS_ALERT, TlsRecordSplitter } from './framing.js';
import { watchKeylog } from './keylog.js';
import { RecordPipe } from './record-pipe.js';

export const LOCKDOWN_PORT = 62078;
export const DEFAULT_LOCKDOWN_TIMEOUT_MS = 10_000;

/** The certificate and key a host presents in session and service TLS. */
export interface TlsCredentials {
  cert: string | Buffer;
  key: string | Buffer;
}

/**
 * What hosts offer (reference §1.7.2): up to TLS 1.2, because StopSession
 * needs the record types TLS 1.3 hides, and security level 0 so old devices'
 * RSA/CBC suites still work. Hosts never verify the device certificate.
 */
export const HOST_TLS = {
  minVersion: 'TLSv1',
  maxVersion: 'TLSv1.2',
  ciphers: 'ALL:!aNULL:!eNULL:@SECLEVEL=0',
  rejectUnauthorized: false,
} as const;

export interface LockdownClientOptions {
  /** Sent as Label with every request, as libimobiledevice does. */
  label?: string;
  timeoutMs?: number;
}

interface Waiter {
  resolve: (reply: PlistDict) => void;
  reject: (err: LockdownError) => void;
}

export class LockdownClient {
  readonly label: string;
  readonly timeoutMs: number;
  sessionId?: string;
  private mode: 'plain' | 'tls' | 'closing' | 'dead' = 'plain';
  private plain = new FrameReader();
  private records = new TlsRecordSplitter();
  private tlsReader = new FrameReader();
  private pipe?: RecordPipe;
  private secure?: TLSSocket;
  private waiter?: Waiter;
  private chain: Promise<unknown> = Promise.resolve();
  private onCloseNotify?: () => void;

  constructor(
    readonly socket: Socket,
    options: LockdownClientOptions = {},
  ) {
    this.label = options.label ?? 'tsmuxd';
    this.timeoutMs = options.timeoutMs ?? DEFAULT_LOCKDOWN_TIMEOUT_MS;
    socket.on('data', (chunk: Buffer) => this.onRaw(chunk));
    socket.on('error', () => this.fail(new LockdownError('the lockdown connection failed', LOCKDOWN_CLOSED)));
    socket.on('close', () => this.fail(new LockdownError('the lockdown connection closed', LOCKDOWN_CLOSED)));
    socket.resume();
  }

  get closed(): boolean {
    return this.mode === 'dead';
  }

  /** Sends one request and resolves with its reply; a reply carrying Error rejects with that code. */
  request(body: PlistDict): Promise<PlistDict> {
    const run = this.chain.then(() => this.exchange(body));
    this.chain = run.catch(() => undefined);
    return run;
  }

  async queryType(): Promise<string> {
    const r = await this.request({ Request: 'QueryType' });
    return expectString(r, 'Type', 'QueryType');
  }

  async getValue(key?: string, domain?: string): Promise<PlistValue> {
    const r = await this.request({ Request: 'GetValue', ...(domain ? { Domain: domain } : {}), ...(key ? { Key: key } : {}) });
    if (r.Value === undefined) throw new LockdownError('GetValue reply without Value', LOCKDOWN_PROTOCOL, 'GetValue');
    return r.Value;
  }

  async setValue(key: string, value: PlistValue, domain?: string): Promise<void> {
    await this.request({ Request: 'SetValue', ...(domain ? { Domain: domain } : {}), Key: key, Value: value });
  }

  /** StartSession; with EnableSessionSSL the connection becomes TLS before this resolves. */
  async startSession(hostId: string, systemBuid: string, credentials: TlsCredentials): Promise<{ sessionId: string; ssl: boolean }> {
    const r = await this.request({ Request: 'StartSession', HostID: hostId, SystemBUID: systemBuid });
    const sessionId = expectString(r, 'SessionID', 'StartSession');
    this.sessionId = sessionId;
    const ssl = r.EnableSessionSSL === true;
    if (ssl) await this.startTls(credentials);
    return { sessionId, ssl };
  }

  /** StopSession: both close_notify alerts, then plaintext on the same connection. */
  async stopSession(): Promise<void> {
    if (!this.sessionId) throw new LockdownError('no session to stop', 'NoSession', 'StopSession');
    await this.request({ Request: 'StopSession', SessionID: this.sessionId });
    this.sessionId = undefined;
    if (this.mode !== 'tls') return;
    await this.withDeadline(
      new Promise<void>((resolve) => {
        this.onCloseNotify = resolve;
        this.mode = 'closing';
        this.secure!.end();
      }),
      'the device close_notify',
      'StopSession',
    );
  }

  async startService(service: string, escrowBag?: Buffer): Promise<{ port: number; ssl: boolean }> {
    const r = await this.request({ Request: 'StartService', Service: service, ...(escrowBag ? { EscrowBag: escrowBag } : {}) });
    const port = r.Port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new LockdownError(`StartService ${service}: no valid Port in the reply`, LOCKDOWN_PROTOCOL, 'StartService');
    }
    return { port, ssl: r.EnableServiceSSL === true };
  }

  /** Goodbye, then the end of the connection. */
  async close(): Promise<void> {
    if (this.mode === 'dead') return;
    try {
      await this.request({ Request: 'Goodbye' });
    } catch {
      // a device that hangs up first is fine
    }
    this.destroy();
  }

  destroy(): void {
    this.fail(new LockdownError('the lockdown client was closed', LOCKDOWN_CLOSED));
  }

  private async exchange(body: PlistDict): Promise<PlistDict> {
    const verb = String(body.Request);
    if (this.mode === 'dead') throw new LockdownError(`${verb}: the lockdown connection is closed`, LOCKDOWN_CLOSED, verb);
    const reply = new Promise<PlistDict>((resolve, reject) => (this.waiter = { resolve, reject }));
    const frame = encodeFrame({ Label: this.label, ...body });
    if (this.secure) this.secure.write(frame);
    else this.socket.write(frame);
    const r = await this.withDeadline(reply, `${verb} reply`, verb);
    if (typeof r.Error === 'string') throw new LockdownError(`${verb}: ${r.Error}`, r.Error, verb);
    if (r.Request !== undefined && r.Request !== verb) {
      this.fail(new LockdownError(`${verb}: a reply to ${String(r.Request)}`, LOCKDOWN_PROTOCOL, verb));
      throw new LockdownError(`${verb}: a reply to ${String(r.Request)}`, LOCKDOWN_PROTOCOL, verb);
    }
    return r;
  }

  private withDeadline<T>(p: Promise<T>, what: string, verb: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new LockdownError(`no ${what} within ${this.timeoutMs} ms`, LOCKDOWN_TIMEOUT, verb);
        this.fail(err);
        reject(err);
      }, this.timeoutMs);
    });
    return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
  }

  private async startTls(credentials: TlsCredentials): Promise<void> {
    this.pipe = new RecordPipe(this.socket);
    let secure: TLSSocket;
    try {
      secure = tls.connect({ socket: this.pipe, cert: credentials.cert, key: credentials.key, ...HOST_TLS });
    } catch (err) {
      const e = new LockdownError(`session TLS: ${(err as Error).message}`, LOCKDOWN_TLS, 'StartSession');
      this.fail(e);
      throw e;
    }
    watchKeylog(secure);
    this.secure = secure;
    this.tlsReader = new FrameReader();
    this.records = new TlsRecordSplitter();
    this.mode = 'tls';
    secure.on('data', (chunk: Buffer) => this.onFrames(this.tlsReader, chunk));
    const handshake = new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', (err) => reject(new LockdownError(`session TLS: ${err.message}`, LOCKDOWN_TLS, 'StartSession')));
    });
    secure.on('error', (err) => this.fail(new LockdownError(`session TLS: ${err.message}`, LOCKDOWN_TLS)));
    // Anything that came after the StartSession reply is the device's TLS.
    const rest = this.plain.drain();
    if (rest.length) this.onRaw(rest);
    await this.withDeadline(handshake, 'session TLS handshake', 'StartSession');
  }

  private onRaw(chunk: Buffer): void {
    try {
      if (this.mode === 'plain') return this.onFrames(this.plain, chunk);
      if (this.mode !== 'tls' && this.mode !== 'closing') return;
      this.records.feed(chunk);
      for (let rec = this.records.next(); rec; rec = this.records.next()) {
        this.pipe!.push(rec);
        if (this.mode === 'closing' && rec[0] === TLS_ALERT) {
          // The device's close_notify: plaintext from here on.
          const after = this.records.drain();
          this.secure = undefined;
          this.pipe = undefined;
          this.plain = new FrameReader();
          this.mode = 'plain';
          this.onCloseNotify?.();
          this.onCloseNotify = undefined;
          if (after.length) this.onFrames(this.plain, after);
          return;
        }
      }
    } catch (err) {
      this.fail(new LockdownError(`bad bytes from lockdownd: ${(err as Error).message}`, LOCKDOWN_PROTOCOL));
    }
  }

  private onFrames(reader: FrameReader, chunk: Buffer): void {
    try {
      reader.feed(chunk);
      for (let body = reader.next(); body; body = reader.next()) {
        const value = decodeBody(body);
        if (!isPlistDict(value)) throw new Error('a reply that is not a dictionary');
        const w = this.waiter;
        if (!w) throw new Error('a reply nobody asked for');
        this.waiter = undefined;
        w.resolve(value);
      }
    } catch (err) {
      this.fail(new LockdownError(`bad reply from lockdownd: ${(err as Error).message}`, LOCKDOWN_PROTOCOL));
    }
  }

  private fail(err: LockdownError): void {
    if (this.mode === 'dead') return;
    this.mode = 'dead';
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
    // A handshake in progress hears why, instead of waiting for its deadline.
    this.secure?.destroy(err);
    this.socket.destroy();
  }
}

function expectString(r: PlistDict, key: string, verb: string): string {
  const v = r[key];
  if (typeof v !== 'string') throw new LockdownError(`${verb} reply: ${key} is not a string`, LOCKDOWN_PROTOCOL, verb);
  return v;
}

/** Service TLS (StartService said EnableServiceSSL): TLS as the very first thing on the service connection. */
export async function startServiceTls(socket: Socket, credentials: TlsCredentials, timeoutMs = DEFAULT_LOCKDOWN_TIMEOUT_MS): Promise<TLSSocket> {
  const secure = tls.connect({ socket, cert: credentials.cert, key: credentials.key, ...HOST_TLS });
  watchKeylog(secure);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new LockdownError(`no service TLS handshake within ${timeoutMs} ms`, LOCKDOWN_TIMEOUT));
    }, timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      resolve();
    });
    secure.once('error', (err) => {
      clearTimeout(timer);
      reject(new LockdownError(`service TLS: ${err.message}`, LOCKDOWN_TLS));
    });
  });
  return secure;
}
