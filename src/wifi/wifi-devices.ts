// Phones on the network, from mDNS to the device table (docs/wifi.md): each
// `_apple-mobdev2._tcp` instance the browser resolves is matched to pair
// records (pair-match.ts); a matched one gets a heartbeat link
// (heartbeat-link.ts) and is listed as a Network entry once its first Marco
// is answered. It is unlisted when the heartbeat stops or its mDNS record
// goes; while the record stays, the daemon tries again with backoff, and at
// once when the phone announces itself again.
//
// One instance's trouble ends that instance's attempt only: every failure is
// caught here and logged once per distinct reason.
import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { PairRecordStore } from '../pairing/store.js';
import type { Logger } from '../util/log.js';
import { HeartbeatLink } from './heartbeat-link.js';
import { MobdevBrowser, type FoundPhone } from './mdns-browser.js';
import { CachedRecords, candidatesFor } from './pair-match.js';

export type WifiSetting = 'auto' | 'off';

/** Added to a Marco's Interval before the phone counts as gone (default). */
export const DEFAULT_HEARTBEAT_GRACE_MS = 5_000;
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 60_000;
/** A phone that announces itself again is tried at once, but not more often than this. */
const ANNOUNCED_RETRY_MIN_MS = 1_000;

export interface WifiDevicesOptions {
  devices: DeviceTable;
  store: PairRecordStore;
  log: Logger;
  graceMs?: number;
}

interface Tracked {
  phone: FoundPhone;
  /** Bumped by every new attempt and by forgetting: a late result of an old one is dropped. */
  generation: number;
  link?: HeartbeatLink;
  entry?: DeviceRecord;
  retry?: NodeJS.Timeout;
  retryMs: number;
  lastFailure?: string;
  attempting: boolean;
  lastAttempt: number;
}

export class WifiDevices {
  private readonly browser: MobdevBrowser;
  private readonly tracked = new Map<string, Tracked>();
  private readonly graceMs: number;
  private readonly records: CachedRecords;
  private closed = false;

  constructor(private readonly o: WifiDevicesOptions) {
    this.graceMs = o.graceMs ?? DEFAULT_HEARTBEAT_GRACE_MS;
    this.records = new CachedRecords(o.store);
    this.browser = new MobdevBrowser(o.log);
    this.browser.keep = (name) => {
      const t = this.tracked.get(name);
      return t !== undefined && (t.entry !== undefined || t.attempting);
    };
    this.browser.on('found', (p) => this.onFound(p));
    this.browser.on('lost', ({ name, reason }) => this.forget(name, reason));
    o.devices.on('paired', this.onPaired);
  }

  /** A pairing just saved a record: phones no record matched may match now. */
  private readonly onPaired = () => {
    this.records.invalidate();
    for (const t of this.tracked.values()) {
      if (t.lastFailure !== 'unmatched' || t.attempting || t.entry) continue;
      clearTimeout(t.retry);
      t.retryMs = RETRY_FIRST_MS;
      this.attempt(t);
    }
  };

  start(): void {
    this.browser.start();
    this.o.log.info('wifi: browsing _apple-mobdev2._tcp over mDNS');
  }

  close(): void {
    this.closed = true;
    this.o.devices.off('paired', this.onPaired);
    this.browser.close();
    for (const name of [...this.tracked.keys()]) this.forget(name, 'the daemon stops');
  }

  private onFound(phone: FoundPhone): void {
    if (this.closed) return;
    const t = this.tracked.get(phone.name);
    if (!t) {
      const fresh: Tracked = { phone, generation: 0, retryMs: RETRY_FIRST_MS, attempting: false, lastAttempt: 0 };
      this.tracked.set(phone.name, fresh);
      this.attempt(fresh);
      return;
    }
    const moved = t.phone.address !== phone.address;
    t.phone = phone;
    if (moved && t.entry) {
      this.unlist(t, `it moved to ${phone.address}`);
    }
    // Announced again (back on the network, or a new address): try now.
    if (!t.entry && !t.attempting && Date.now() - t.lastAttempt >= ANNOUNCED_RETRY_MIN_MS) {
      clearTimeout(t.retry);
      t.retryMs = RETRY_FIRST_MS;
      this.attempt(t);
    }
  }

  private attempt(t: Tracked): void {
    t.attempting = true;
    t.lastAttempt = Date.now();
    const generation = ++t.generation;
    this.connect(t, generation).then(
      () => undefined,
      (err: unknown) => {
        if (t.generation !== generation || this.closed) return;
        t.attempting = false;
        this.failed(t, (err as Error)?.message ?? String(err));
      },
    );
  }

  private async connect(t: Tracked, generation: number): Promise<void> {
    const { phone } = t;
    const candidates = await candidatesFor(this.records, phone.label, phone.txt);
    if (t.generation !== generation) return;
    if (candidates.length === 0) {
      t.attempting = false;
      if (t.lastFailure !== 'unmatched') this.o.log.debug(`wifi: ${phone.name} at ${phone.address} matches no pair record; ignored`);
      t.lastFailure = 'unmatched';
      // A pairing may come (over USB, say): tried again when one does, when
      // it announces itself, and with backoff.
      this.scheduleRetry(t);
      return;
    }
    const systemBuid = await this.o.store.systemBUID();
    const reasons: string[] = [];
    for (const c of candidates) {
      const link = new HeartbeatLink({
        address: phone.address,
        scopeId: phone.interfaceIndex,
        record: c.record,
        systemBuid,
        graceMs: this.graceMs,
      });
      t.link = link;
      let udid: string;
      try {
        udid = await link.start();
      } catch (err) {
        reasons.push(`${c.udid}: ${(err as Error).message}`);
        if (t.generation !== generation) return;
        continue;
      }
      if (t.generation !== generation || this.closed) {
        link.close();
        return;
      }
      this.listed(t, link, udid);
      return;
    }
    t.link = undefined;
    throw new Error(reasons.join('; '));
  }

  private listed(t: Tracked, link: HeartbeatLink, udid: string): void {
    t.attempting = false;
    t.lastFailure = undefined;
    t.retryMs = RETRY_FIRST_MS;
    const other = this.o.devices.visible().find((d) => d.connectionType === 'Network' && d.serialNumber === udid);
    if (other) {
      // The same phone under a second instance name (an old name not yet expired).
      this.o.log.debug(`wifi: ${t.phone.name} is ${udid}, listed already as device ${other.deviceId}`);
      link.close();
      return;
    }
    const { phone } = t;
    t.entry = this.o.devices.addNetwork(udid, {
      endpoint: { address: phone.address, scopeId: phone.interfaceIndex },
      serviceName: `${phone.name}.`,
      interfaceIndex: phone.interfaceIndex,
    });
    this.o.log.notice(`wifi: ${udid} on the network at ${phone.address} (device ${t.entry.deviceId})`);
    link.on('lost', (reason) => {
      if (t.link !== link) return;
      this.unlist(t, reason);
      this.scheduleRetry(t);
    });
  }

  private unlist(t: Tracked, reason: string): void {
    t.link?.close();
    t.link = undefined;
    if (!t.entry) return;
    this.o.log.notice(`wifi: ${t.entry.serialNumber} (device ${t.entry.deviceId}) off the network: ${reason}`);
    this.o.devices.removeNetwork(t.entry);
    t.entry = undefined;
  }

  private failed(t: Tracked, reason: string): void {
    if (reason !== t.lastFailure) this.o.log.info(`wifi: ${t.phone.name} at ${t.phone.address}: ${reason}`);
    t.lastFailure = reason;
    this.scheduleRetry(t);
  }

  private scheduleRetry(t: Tracked): void {
    if (this.closed || !this.tracked.has(t.phone.name)) return;
    clearTimeout(t.retry);
    const wait = t.retryMs;
    t.retryMs = Math.min(t.retryMs * 2, RETRY_MAX_MS);
    t.retry = setTimeout(() => {
      t.retry = undefined;
      if (!t.entry && !t.attempting && this.tracked.get(t.phone.name) === t) this.attempt(t);
    }, wait);
    t.retry.unref();
  }

  private forget(name: string, reason: string): void {
    const t = this.tracked.get(name);
    if (!t) return;
    this.tracked.delete(name);
    t.generation++;
    clearTimeout(t.retry);
    if (t.attempting && !this.closed) this.o.log.info(`wifi: ${name} gone while connecting: ${reason}`);
    this.unlist(t, reason);
  }
}
