// What keeps a phone on the network listed (reference tunnel-wifi-remote
// §3.2): lockdownd on 62078 at its address, a session with the pair record,
// StartService com.apple.mobile.heartbeat, and then a Polo for every Marco.
// The phone is up from its first Marco, and down when a Marco is late by
// more than its Interval plus `graceMs`, when it says SleepyTime, or when
// the connection ends. Everything the phone sends is bounded: a heartbeat
// frame over MAX_HEARTBEAT_FRAME ends the link, and every wait has a
// deadline, so a lockdownd that accepts and goes silent costs one timeout.
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

import { LockdownClient, LOCKDOWN_PORT, startServiceTls } from '../lockdown/client.js';
import { decodeBody, encodeFrame } from '../lockdown/framing.js';
import { hostCredentials } from '../pairing/certificates.js';
import { isPlistDict, type PlistDict } from '../protocol/plist-codec.js';

export const HEARTBEAT_SERVICE = 'com.apple.mobile.heartbeat';
/** A Marco is a small dictionary; anything this big is not one. */
export const MAX_HEARTBEAT_FRAME = 64 * 1024;
export const CONNECT_TIMEOUT_MS = 5_000;
export const LOCKDOWN_TIMEOUT_MS = 10_000;
/** usbmuxd2 waits 15 s for a Marco; so does the first one here. */
export const FIRST_MARCO_TIMEOUT_MS = 15_000;
/** An Interval outside 1..MAX_INTERVAL_S is taken as the default. */
const DEFAULT_INTERVAL_S = 10;
const MAX_INTERVAL_S = 600;

export interface HeartbeatLinkOptions {
  address: string;
  /** sin6_scope_id for a link-local IPv6 address. */
  scopeId?: number;
  record: PlistDict;
  systemBuid: string;
  graceMs: number;
}

export interface HeartbeatLinkEvents {
  lost: [string];
}

export class HeartbeatLink extends EventEmitter<HeartbeatLinkEvents> {
  /** The phone's UniqueDeviceID, from the session. */
  udid?: string;
  private stream?: Socket | TLSSocket;
  private lockdown?: LockdownClient;
  private deadline?: NodeJS.Timeout;
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private firstMarco?: (err?: Error) => void;

  constructor(private readonly o: HeartbeatLinkOptions) {
    super();
  }

  private get host(): string {
    return this.o.scopeId && this.o.address.startsWith('fe80') ? `${this.o.address}%${this.o.scopeId}` : this.o.address;
  }

  /** Resolves with the phone's UDID once its first Marco is answered; rejects with why not. */
  async start(): Promise<string> {
    try {
      const socket = await this.dial(LOCKDOWN_PORT);
      const lockdown = new LockdownClient(socket, { label: 'tsmuxd', timeoutMs: LOCKDOWN_TIMEOUT_MS });
      this.lockdown = lockdown;
      const credentials = hostCredentials(this.o.record);
      await lockdown.startSession(String(this.o.record.HostID), this.o.systemBuid, credentials);
      const udid = await lockdown.getValue('UniqueDeviceID');
      if (typeof udid !== 'string' || udid.length === 0 || udid.length > 64) throw new Error('the phone gave no usable UniqueDeviceID');
      this.udid = udid;
      const service = await lockdown.startService(HEARTBEAT_SERVICE);
      await lockdown.close();
      this.lockdown = undefined;
      const plain = await this.dial(service.port);
      this.stream = service.ssl ? await startServiceTls(plain, credentials, LOCKDOWN_TIMEOUT_MS) : plain;
      if (this.ended) throw new Error('closed');
      await this.run();
      return udid;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  close(): void {
    this.ended = true;
    clearTimeout(this.deadline);
    this.lockdown?.destroy();
    this.stream?.destroy();
    this.firstMarco?.(new Error('the link was closed'));
  }

  private dial(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: this.host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no TCP connection to ${this.o.address}:${port} within ${CONNECT_TIMEOUT_MS} ms`));
      }, CONNECT_TIMEOUT_MS);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`${this.o.address}:${port}: ${err.message}`));
      });
    });
  }

  /** Resolves at the first Marco. */
  private run(): Promise<void> {
    const stream = this.stream!;
    const first = new Promise<void>((resolve, reject) => {
      this.firstMarco = (err) => {
        this.firstMarco = undefined;
        if (err) reject(err);
        else resolve();
      };
    });
    this.arm(FIRST_MARCO_TIMEOUT_MS, `no Marco within ${FIRST_MARCO_TIMEOUT_MS} ms of the heartbeat's start`);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => this.lose(`the heartbeat connection failed: ${err.message}`));
    stream.on('close', () => this.lose('the phone closed the heartbeat connection'));
    return first;
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    while (this.buffered.length >= 4) {
      const length = this.buffered.readUInt32BE(0);
      if (length > MAX_HEARTBEAT_FRAME) return this.lose(`a heartbeat frame of ${length} bytes (at most ${MAX_HEARTBEAT_FRAME})`);
      if (this.buffered.length < 4 + length) return;
      const body = this.buffered.subarray(4, 4 + length);
      this.buffered = this.buffered.subarray(4 + length);
      let message;
      try {
        message = decodeBody(body);
      } catch (err) {
        return this.lose(`a heartbeat message that is not a plist: ${(err as Error).message}`);
      }
      if (!isPlistDict(message)) return this.lose('a heartbeat message that is not a dictionary');
      this.onMessage(message);
      if (this.ended) return;
    }
  }

  private onMessage(message: PlistDict): void {
    if (message.Command === 'SleepyTime') return this.lose('the phone is going to sleep (SleepyTime)');
    if (message.Command !== 'Marco') return;  // anything else is not ours to answer
    const raw = message.Interval;
    const n = typeof raw === 'bigint' ? Number(raw) : typeof raw === 'number' ? raw : DEFAULT_INTERVAL_S;
    const interval = Number.isFinite(n) && n >= 1 && n <= MAX_INTERVAL_S ? n : DEFAULT_INTERVAL_S;
    this.stream?.write(encodeFrame({ Command: 'Polo' }));
    const waitMs = interval * 1000 + this.o.graceMs;
    this.arm(waitMs, `no Marco within ${waitMs} ms (Interval ${interval} s + ${this.o.graceMs} ms grace)`);
    this.firstMarco?.();
  }

  private arm(ms: number, why: string): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.lose(why), ms);
  }

  private lose(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.deadline);
    this.stream?.destroy();
    if (this.firstMarco) this.firstMarco(new Error(reason));
    else this.emit('lost', reason);
  }
}
