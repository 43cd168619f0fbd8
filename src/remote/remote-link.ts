// One remote usbmux host as this daemon follows it (docs/remote.md): a
// Listen connection whose Attached / Detached become entries in our device
// table, and a second connection that asks ReadBUID every keepalive interval
// and must hear back before the next one is due. When either ends or a ping
// goes unanswered, the host's phones are Detached (their Connects end with
// their own sockets) and the link is tried again, 1 s doubling to 30 s.
import type { Socket } from 'node:net';

import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { PlistDict } from '../protocol/plist-codec.js';
import { remoteRequest } from '../protocol/remote-messages.js';
import type { Logger } from '../util/log.js';
import { formatTarget, openRemote, readMessages, type RemoteMessage, type RemoteTarget } from './remote-wire.js';

/**
 * The Properties kept of a remote phone, each a number, a string of at most
 * 256 characters or at most 128 bytes (NetworkAddress); the rest of what a
 * remote sends is dropped, so a listed phone costs us a few hundred bytes.
 */
const KEPT_PROPERTIES = ['ConnectionSpeed', 'ConnectionType', 'LocationID', 'ProductID', 'SerialNumber', 'USBSerialNumber', 'EscapedFullServiceName', 'InterfaceIndex', 'NetworkAddress'];

function keptProperties(props: PlistDict): PlistDict {
  const out: PlistDict = {};
  for (const key of KEPT_PROPERTIES) {
    const v = props[key];
    if (typeof v === 'number' || typeof v === 'bigint' || (typeof v === 'string' && v.length <= 256) || (v instanceof Uint8Array && v.length <= 128)) out[key] = v;
  }
  return out;
}

/** A host may list this many phones through us; the rest are ignored with a warning. */
export const MAX_DEVICES_PER_INSTANCE = 256;
export const DEFAULT_KEEPALIVE_MS = 5_000;
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
const LISTEN_TAG = 1;

export type LinkState = 'connecting' | 'up' | 'backoff' | 'closed';

export interface RemoteLinkOptions {
  instance: number;
  target: RemoteTarget;
  devices: DeviceTable;
  log: Logger;
  keepaliveMs?: number;
  /** The link went down: its phones are Detached; their open connections should end too. */
  onDown?: (why: string) => void;
}

export class RemoteLink {
  state: LinkState = 'connecting';
  /** Why the last attempt or session ended. */
  lastError = '';
  private readonly phones = new Map<number, DeviceRecord>();
  private listen?: Socket;
  private ping?: Socket;
  private pingTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private backoffMs = BACKOFF_FIRST_MS;
  private awaitingPing = false;
  private attempt = 0;
  private loggedFailure = '';

  constructor(private readonly options: RemoteLinkOptions) {}

  get label(): string {
    return `remote ${this.options.instance} (${formatTarget(this.options.target)})`;
  }

  get target(): RemoteTarget {
    return this.options.target;
  }

  /** The phones this host lists now. */
  listed(): DeviceRecord[] {
    return [...this.phones.values()];
  }

  start(): void {
    void this.connect();
  }

  close(): void {
    this.state = 'closed';
    clearTimeout(this.retryTimer);
    this.teardown();
  }

  private async connect(): Promise<void> {
    const attempt = ++this.attempt;
    this.state = 'connecting';
    const stale = () => (this.state as LinkState) === 'closed' || attempt !== this.attempt;
    const { target, log } = this.options;
    let listen: Socket | undefined;
    let ping: Socket | undefined;
    try {
      listen = await openRemote(target);
      ping = await openRemote(target);
    } catch (err) {
      listen?.destroy();
      if (stale()) return;
      this.down(`cannot reach it: ${(err as Error).message}`);
      return;
    }
    if (stale()) {
      listen.destroy();
      ping.destroy();
      return;
    }
    this.listen = listen;
    this.ping = ping;
    const lost = (why: string) => () => {
      if (!stale()) this.down(why);
    };
    // What TLS said last (a peer's alert: "tlsv13 alert certificate required"), for the close's line.
    let said = '';
    for (const s of [listen, ping]) s.on('error', (err) => (said ||= `: ${err.message}`));
    listen.once('close', () => lost(`its Listen connection closed${said}`)());
    ping.once('close', () => lost(`its keepalive connection closed${said}`)());
    readMessages(listen, (m) => this.onListenMessage(m), (err) => lost(`its Listen connection broke: ${err.message}`)());
    readMessages(ping, () => (this.awaitingPing = false), (err) => lost(`its keepalive broke: ${err.message}`)());
    listen.write(remoteRequest('Listen', LISTEN_TAG));
    const interval = this.options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    let tag = 1;
    this.pingTimer = setInterval(() => {
      if (this.awaitingPing) return lost(`no answer to a keepalive within ${interval} ms`)();
      this.awaitingPing = true;
      ping.write(remoteRequest('ReadBUID', tag++));
    }, interval);
    log.debug(`${this.label}: connected${target.tls ? ' (TLS)' : ' (plain TCP)'}`);
  }

  private onListenMessage(m: RemoteMessage): void {
    const { log } = this.options;
    if (m.kind === 'result') {
      if (m.tag !== LISTEN_TAG) return;
      if (m.result !== 0) return this.down(`Listen answered ${m.result}`);
      this.state = 'up';
      this.backoffMs = BACKOFF_FIRST_MS;
      this.loggedFailure = '';
      log.notice(`${this.label}: listening`);
      return;
    }
    const { dict } = m;
    if (dict.MessageType === 'Attached') this.attached(dict);
    else if (dict.MessageType === 'Detached') {
      const d = this.phones.get(Number(dict.DeviceID));
      if (!d) return;
      this.phones.delete(Number(dict.DeviceID));
      this.options.devices.removeRemote(d);
    }
  }

  private attached(dict: PlistDict): void {
    const { devices, log, instance } = this.options;
    const remoteId = Number(dict.DeviceID);
    const props = dict.Properties;
    const udid = props && typeof props === 'object' && !Array.isArray(props) ? (props as PlistDict).SerialNumber : undefined;
    if (!Number.isInteger(remoteId) || remoteId <= 0 || remoteId > 0xffffff || typeof udid !== 'string' || udid.length > 128) {
      log.info(`${this.label}: ignoring an Attached without a usable DeviceID or SerialNumber`);
      return;
    }
    if (this.phones.has(remoteId)) return;
    if (this.phones.size >= MAX_DEVICES_PER_INSTANCE) {
      log.warning(`${this.label}: more than ${MAX_DEVICES_PER_INSTANCE} phones; ${udid} is not listed`);
      return;
    }
    const properties = keptProperties(props as PlistDict);
    const type = properties.ConnectionType === 'Network' ? 'Network' : 'USB';
    const d = devices.addRemote({ instance, remoteId, properties }, udid, type);
    if (d) this.phones.set(remoteId, d);
  }

  private teardown(): void {
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.awaitingPing = false;
    this.listen?.destroy();
    this.ping?.destroy();
    this.listen = this.ping = undefined;
    for (const d of this.phones.values()) this.options.devices.removeRemote(d);
    this.phones.clear();
  }

  private down(reason: string): void {
    if (this.state === 'closed') return;
    // OpenSSL's messages end in a newline; one line each, in the log and in `remote ls`.
    const why = reason.replace(/\s+/g, ' ').trim();
    this.attempt++;  // whatever the old sockets still say is stale
    const wasUp = this.state === 'up';
    this.teardown();
    this.lastError = why;
    this.state = 'backoff';
    this.options.onDown?.(why);
    const { log } = this.options;
    // Each distinct failure once while it repeats; a lost session always.
    if (wasUp || why !== this.loggedFailure) log.warning(`${this.label}: ${why}; trying again in ${this.backoffMs} ms`);
    this.loggedFailure = why;
    this.retryTimer = setTimeout(() => void this.connect(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
  }
}
