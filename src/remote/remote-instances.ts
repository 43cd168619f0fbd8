// The remote usbmux hosts this daemon merges into its own socket
// (docs/remote.md), numbered 1-255 as usbfluxd numbers them: a remote
// phone's DeviceID is (instance << 24) | its DeviceID there. Added and
// removed by `tsmuxd remote add/rm`, usbfluxd's AddInstance/RemoveInstance
// (both only from root and the daemon's user, src/server/access.ts) and
// DNS-SD discovery.
import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { MuxEngine } from '../native/mux-engine.js';
import type { RemoteTlsPem } from '../native/addon.js';
import type { PlistDict } from '../protocol/plist-codec.js';
import { MAX_INSTANCES, remoteRequest } from '../protocol/remote-messages.js';
import type { Logger } from '../util/log.js';
import { RemoteDials } from './remote-dials.js';
import { RemoteLink, type LinkState } from './remote-link.js';
import { exchange, formatTarget, type RemoteMessage, type RemoteTarget } from './remote-wire.js';

export type InstanceSource = 'cli' | 'usbfluxd' | 'dns-sd';

export interface InstanceInfo {
  instance: number;
  host: string;
  port: number;
  tls: boolean;
  source: InstanceSource;
  serviceName: string;
  state: LinkState;
  lastError: string;
  devices: string[];
}

export interface RemoteInstancesOptions {
  engine: MuxEngine;
  devices: DeviceTable;
  log: Logger;
  keepaliveMs?: number;
  connectTimeoutMs: number;
}

export type AddOutcome = { ok: true; instance: number } | { ok: false; why: 'present' | 'full' };

interface Entry {
  link: RemoteLink;
  source: InstanceSource;
  serviceName: string;
  /** Connects to its phones that are open: ended when the link goes down or the host is removed. */
  conns: Set<number>;
}

export class RemoteInstances {
  private readonly entries = new Map<number, Entry>();
  private readonly dials: RemoteDials;

  constructor(private readonly options: RemoteInstancesOptions) {
    this.dials = new RemoteDials(options.engine);
    options.engine.on('closed', (conn) => {
      for (const e of this.entries.values()) e.conns.delete(conn);
    });
  }

  /** A host gone (or hung past the keepalive): its phones' connections end, and their clients read EOF. */
  private endConnections(e: Entry, why: string): void {
    for (const conn of e.conns) this.options.engine.remote.farGone(conn, `${e.link.label}: ${why}`);
    e.conns.clear();
  }

  find(host: string, port: number): number | undefined {
    for (const [n, e] of this.entries) if (e.link.target.host === host && e.link.target.port === port) return n;
    return undefined;
  }

  add(host: string, port: number, tls: RemoteTlsPem | null, source: InstanceSource, serviceName = ''): AddOutcome {
    if (this.find(host, port) !== undefined) return { ok: false, why: 'present' };
    let instance = 0;
    for (let n = 1; n <= MAX_INSTANCES; n++) {
      if (!this.entries.has(n)) {
        instance = n;
        break;
      }
    }
    if (!instance) return { ok: false, why: 'full' };
    const conns = new Set<number>();
    const link = new RemoteLink({
      instance,
      target: { host, port, tls },
      devices: this.options.devices,
      log: this.options.log,
      keepaliveMs: this.options.keepaliveMs,
      onDown: (why) => this.endConnections(entry, why),
    });
    const entry: Entry = { link, source, serviceName: serviceName || formatTarget({ host, port }), conns };
    this.entries.set(instance, entry);
    this.options.log.notice(`${link.label}: added (${tls ? 'TLS' : 'plain TCP, unauthenticated'}, by ${source})`);
    link.start();
    return { ok: true, instance };
  }

  remove(host: string, port: number): boolean {
    const n = this.find(host, port);
    if (n === undefined) return false;
    const e = this.entries.get(n)!;
    this.entries.delete(n);
    e.link.close();
    this.endConnections(e, 'removed');
    this.options.log.notice(`${e.link.label}: removed`);
    return true;
  }

  list(): InstanceInfo[] {
    return [...this.entries].map(([instance, e]) => ({
      instance,
      host: e.link.target.host,
      port: e.link.target.port,
      tls: e.link.target.tls !== null,
      source: e.source,
      serviceName: e.serviceName,
      state: e.link.state,
      lastError: e.link.lastError,
      devices: e.link.listed().map((d) => d.serialNumber),
    }));
  }

  /**
   * usbfluxd's `Instances` answer (usbmux_remote.c:1016-1043): keyed by the
   * instance number as a decimal string. usbfluxd lists only instances
   * that are up; so do we unless `all` (tsmuxd remote ls), with our state,
   * last error and TLS in keys of our own.
   */
  instancesDict(all = false): PlistDict {
    const out: PlistDict = {};
    for (const i of this.list()) {
      if (i.state !== 'up' && !all) continue;
      out[String(i.instance)] = {
        IsUnix: false,
        ServiceName: i.serviceName,
        Host: i.host,
        Port: i.port,
        DeviceCount: i.devices.length,
        Devices: i.devices,
        tsmuxdTls: i.tls,
        tsmuxdState: i.state,
        tsmuxdLastError: i.lastError,
      };
    }
    return out;
  }

  /** A Connect to a remote phone; resolves with the data plane's connection id. */
  async dial(device: DeviceRecord, port: number): Promise<number> {
    const entry = device.remote ? this.entries.get(device.remote.instance) : undefined;
    if (!entry || !device.remote) throw Object.assign(new Error('its remote host is gone'), { code: 'ENODEV' });
    const conn = await this.dials.dial(entry.link.target, device.remote.remoteId, port, this.options.connectTimeoutMs);
    if (this.entries.get(device.remote.instance) !== entry || !this.options.devices.has(device)) {
      this.options.engine.closeConnection(conn);
      throw Object.assign(new Error('its remote host went away meanwhile'), { code: 'ENODEV' });
    }
    entry.conns.add(conn);
    return conn;
  }

  /** The host that lists this phone, for a request routed to it (ReadPairRecord...). */
  targetFor(device: DeviceRecord): RemoteTarget | undefined {
    return device.remote ? this.entries.get(device.remote.instance)?.link.target : undefined;
  }

  /** The same request, on a fresh connection to `target`; its answer. */
  forward(target: RemoteTarget, messageType: string, extra: PlistDict = {}): Promise<RemoteMessage> {
    return exchange(target, remoteRequest(messageType, 1, extra), this.options.connectTimeoutMs);
  }

  close(): void {
    for (const e of this.entries.values()) {
      e.link.close();
      this.endConnections(e, 'the daemon stopped');
    }
    this.entries.clear();
  }
}
