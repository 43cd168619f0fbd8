// Browses `_apple-mobdev2._tcp` and keeps the phones it hears of: each
// instance's host, TXT record and address, until its records expire or it
// says goodbye (TTL 0). Everything in a packet is the sender's to choose, so
// every table has a cap, a packet with too many records is dropped whole, and
// more than MAX_PACKETS_PER_SECOND packets a second are dropped unread; each
// kind of trouble is logged once per LOG_EVERY_MS, whatever its volume.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { BlockList, isIP, isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';

import {
  decodeTxt,
  instanceLabel,
  MOBDEV2_SERVICE,
  openMdns,
  type MdnsAnswer,
  type MdnsPacket,
  type MdnsSocket,
  type RemoteInfo,
} from '../protocol/mdns.js';
import type { Logger } from '../util/log.js';

export const MAX_PACKETS_PER_SECOND = 200;
export const MAX_RECORDS_PER_PACKET = 64;
export const MAX_INSTANCES = 64;
export const MAX_HOSTS = 128;
/** A record's TTL is honoured up to this (a sender cannot pin an instance for days). */
export const MAX_TTL_S = 4500;
const QUERY_EVERY_MS = 30_000;
const RESOLVE_RETRY_MS = 5_000;
const SWEEP_EVERY_MS = 2_000;
const LOG_EVERY_MS = 60_000;
const MAX_HOST_NAME = 255;

export interface FoundPhone {
  /** The full instance name (`<label>._apple-mobdev2._tcp.local`). */
  name: string;
  /** `<mac>@<address>` */
  label: string;
  address: string;
  /** sin6_scope_id for a link-local IPv6 address, and the InterfaceIndex clients see. */
  interfaceIndex: number;
  txt: Map<string, string>;
}

interface Instance {
  name: string;
  label: string;
  expires: number;
  host?: string;
  txt?: Map<string, string>;
  interfaceIndex: number;
  /** Reported as found at least once (so its loss is reported too). */
  reported?: boolean;
  lastResolve?: number;
}

export interface MobdevBrowserEvents {
  found: [FoundPhone];
  lost: [{ name: string; reason: string }];
}

export class MobdevBrowser extends EventEmitter<MobdevBrowserEvents> {
  private socket?: MdnsSocket;
  private readonly instances = new Map<string, Instance>();
  private readonly hosts = new Map<string, { address: string; expires: number }>();
  private timers: NodeJS.Timeout[] = [];
  private windowStart = 0;
  private packetsInWindow = 0;
  private readonly lastLogged = new Map<string, number>();
  private readonly dropped = new Map<string, number>();

  /** Instances that must not be evicted when the table is full (set by the daemon: its listed phones). */
  keep?: (name: string) => boolean;

  constructor(private readonly log: Logger) {
    super();
  }

  start(): void {
    this.socket = openMdns();
    this.socket.on('response', (packet, rinfo) => this.onResponse(packet, rinfo));
    this.socket.on('error', (err) => this.count('socket', `mDNS socket: ${err.message}`));
    this.socket.on('warning', (err) => this.count('socket-warning', `mDNS: ${err.message}`));
    this.socket.on('ready', () => this.query());
    this.timers.push(setInterval(() => this.query(), QUERY_EVERY_MS), setInterval(() => this.sweep(), SWEEP_EVERY_MS));
    for (const t of this.timers) t.unref();
  }

  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.socket?.destroy();
    this.socket = undefined;
  }

  /** Asks again now (a phone came back, a test is waiting). */
  query(): void {
    this.socket?.query({ questions: [{ name: MOBDEV2_SERVICE, type: 'PTR' }] }, () => undefined);
  }

  private onResponse(packet: MdnsPacket, rinfo: RemoteInfo): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.packetsInWindow = 0;
    }
    if (++this.packetsInWindow > MAX_PACKETS_PER_SECOND) {
      this.count('flood', `mDNS: over ${MAX_PACKETS_PER_SECOND} packets a second (the latest from ${rinfo.address}); the rest dropped unread`);
      return;
    }
    const records = [...(packet.answers ?? []), ...(packet.additionals ?? [])];
    if (records.length > MAX_RECORDS_PER_PACKET) {
      this.count('big-packet', `mDNS: a packet of ${records.length} records from ${rinfo.address} dropped (at most ${MAX_RECORDS_PER_PACKET})`);
      return;
    }
    // Addresses first, so an instance resolved by this very packet is reported at once.
    for (const r of records) if (r.type === 'A' || r.type === 'AAAA') this.onAddress(r, rinfo, now);
    const touched = new Set<Instance>();
    for (const r of records) {
      if (r.type === 'PTR' && r.name === MOBDEV2_SERVICE) {
        const i = this.onPointer(r, rinfo, now);
        if (i) touched.add(i);
      } else if (r.type === 'SRV' || r.type === 'TXT') {
        const i = this.instances.get(r.name);
        if (!i) continue;
        if (r.type === 'SRV') this.onService(i, r);
        else this.onText(i, r);
        touched.add(i);
      }
    }
    for (const i of this.instances.values()) if (i.host && this.hostChanged(i, records)) touched.add(i);
    for (const i of touched) this.report(i, now);
  }

  private hostChanged(i: Instance, records: MdnsAnswer[]): boolean {
    return records.some((r) => (r.type === 'A' || r.type === 'AAAA') && r.name === i.host);
  }

  private onPointer(r: MdnsAnswer, rinfo: RemoteInfo, now: number): Instance | undefined {
    if (typeof r.data !== 'string') return undefined;
    const name = r.data.endsWith('.') ? r.data.slice(0, -1) : r.data;
    const label = instanceLabel(name);
    if (!label) {
      this.count('bad-name', `mDNS: an instance name that is not a phone's (${name.length} characters) from ${rinfo.address} ignored`);
      return undefined;
    }
    const ttl = Math.min(r.ttl ?? 0, MAX_TTL_S);
    const known = this.instances.get(name);
    if (ttl === 0) {
      if (known) this.forget(known, 'it said goodbye (TTL 0)');
      return undefined;
    }
    if (known) {
      known.expires = now + ttl * 1000;
      return known;
    }
    if (this.instances.size >= MAX_INSTANCES && !this.evictOne()) {
      this.count('too-many', `mDNS: ${MAX_INSTANCES} phones known already; ${name} from ${rinfo.address} ignored`);
      return undefined;
    }
    const i: Instance = { name, label, expires: now + ttl * 1000, interfaceIndex: interfaceIndexFor(rinfo.address) };
    this.instances.set(name, i);
    return i;
  }

  private onService(i: Instance, r: MdnsAnswer): void {
    const data = r.data as { target?: unknown } | undefined;
    if (typeof data?.target !== 'string' || data.target.length === 0 || data.target.length > MAX_HOST_NAME) {
      this.count('bad-srv', `mDNS: a bad SRV record for ${i.name} ignored`);
      return;
    }
    i.host = data.target.endsWith('.') ? data.target.slice(0, -1) : data.target;
  }

  private onText(i: Instance, r: MdnsAnswer): void {
    const txt = decodeTxt(r.data);
    if (!txt) {
      this.count('bad-txt', `mDNS: the TXT record of ${i.name} is over the caps or malformed; ignored`);
      return;
    }
    i.txt = txt;
  }

  private onAddress(r: MdnsAnswer, rinfo: RemoteInfo, now: number): void {
    if (typeof r.data !== 'string' || r.name.length > MAX_HOST_NAME || !usableAddress(r.data, r.type)) {
      this.count('bad-address', `mDNS: a bogus ${r.type} record (${String(r.data).slice(0, 64)}) from ${rinfo.address} ignored`);
      return;
    }
    const ttl = Math.min(r.ttl ?? 0, MAX_TTL_S);
    if (ttl === 0) {
      this.hosts.delete(r.name);
      return;
    }
    // One address per host: IPv4 wins over IPv6, as it needs no scope.
    const known = this.hosts.get(r.name);
    if (known && isIPv4(known.address) && !isIPv4(r.data) && known.expires > now) return;
    if (!known && this.hosts.size >= MAX_HOSTS) {
      this.count('too-many-hosts', `mDNS: ${MAX_HOSTS} host names known already; ${r.name} ignored`);
      return;
    }
    this.hosts.set(r.name, { address: r.data, expires: now + ttl * 1000 });
  }

  private report(i: Instance, now: number): void {
    const address = i.host ? this.hosts.get(i.host)?.address : undefined;
    if (!address || !i.txt) {
      // Not all of it came with the PTR: ask for the rest, now and then.
      if (!i.lastResolve || now - i.lastResolve >= RESOLVE_RETRY_MS) {
        i.lastResolve = now;
        const questions = [{ name: i.name, type: 'SRV' }, { name: i.name, type: 'TXT' }];
        if (i.host) questions.push({ name: i.host, type: 'A' }, { name: i.host, type: 'AAAA' });
        this.socket?.query({ questions }, () => undefined);
      }
      return;
    }
    // Every resolved announcement is reported, repeats too: a phone that
    // announces itself again is back, and the daemon (which throttles) tries
    // it at once.
    i.reported = true;
    this.emit('found', { name: i.name, label: i.label, address, interfaceIndex: i.interfaceIndex, txt: i.txt });
  }

  /** Re-reports every resolved phone (the daemon retries those it could not reach). */
  known(): FoundPhone[] {
    const out: FoundPhone[] = [];
    for (const i of this.instances.values()) {
      const address = i.host ? this.hosts.get(i.host)?.address : undefined;
      if (address && i.txt) out.push({ name: i.name, label: i.label, address, interfaceIndex: i.interfaceIndex, txt: i.txt });
    }
    return out;
  }

  private sweep(): void {
    const now = Date.now();
    for (const i of this.instances.values()) if (i.expires <= now) this.forget(i, 'its mDNS record expired');
    for (const [name, h] of this.hosts) if (h.expires <= now) this.hosts.delete(name);
    for (const [kind, n] of this.dropped) {
      if (n > 0 && now - (this.lastLogged.get(kind) ?? 0) >= LOG_EVERY_MS) {
        this.log.info(`mDNS: ${n} more of the same (${kind}) in the last minute`);
        this.dropped.set(kind, 0);
        this.lastLogged.set(kind, now);
      }
    }
  }

  /**
   * Full: makes room by forgetting the oldest instance the daemon does not
   * hold on to (`keep`: listed or being connected), so a neighbour that
   * announces 64 names with long TTLs cannot keep a real phone out.
   */
  private evictOne(): boolean {
    for (const i of this.instances.values()) {
      if (this.keep?.(i.name)) continue;
      this.forget(i, 'room was needed for another instance');
      return true;
    }
    return false;
  }

  private forget(i: Instance, reason: string): void {
    this.instances.delete(i.name);
    if (i.reported) this.emit('lost', { name: i.name, reason });
  }

  /** Logs the first of a kind, then counts the rest for the sweep's summary line. */
  private count(kind: string, text: string): void {
    const now = Date.now();
    if (now - (this.lastLogged.get(kind) ?? 0) >= LOG_EVERY_MS) {
      this.lastLogged.set(kind, now);
      this.log.info(text);
    } else {
      this.dropped.set(kind, (this.dropped.get(kind) ?? 0) + 1);
    }
  }
}

const unusable = new BlockList();
unusable.addSubnet('0.0.0.0', 8, 'ipv4');
unusable.addSubnet('224.0.0.0', 3, 'ipv4');  // multicast, reserved, broadcast
unusable.addSubnet('127.0.0.0', 8, 'ipv4');
unusable.addSubnet('ff00::', 8, 'ipv6');
unusable.addAddress('::', 'ipv6');
unusable.addAddress('::1', 'ipv6');

/** A unicast address of the record's family that is not loopback (a phone is never on ours). */
function usableAddress(address: string, type: string): boolean {
  const family = isIP(address);
  if ((type === 'A' && family !== 4) || (type === 'AAAA' && family !== 6)) return false;
  return !unusable.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** The index of the interface whose subnet holds `address` (0 when none does). */
export function interfaceIndexFor(address: string): number {
  const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      const list = new BlockList();
      if ((a.family === 'IPv4') !== (family === 'ipv4')) continue;
      try {
        const [base, bits] = a.cidr!.split('/') as [string, string];
        list.addSubnet(base, Number(bits), family);
      } catch {
        continue;
      }
      if (!list.check(address.split('%')[0]!, family)) continue;
      try {
        return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()) || 0;
      } catch {
        return 0;
      }
    }
  }
  return 0;
}
