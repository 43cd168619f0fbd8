// DNS-SD for remote usbmux (docs/remote.md), over the npm multicast-dns
// socket the Wi-Fi code uses (src/protocol/mdns.ts). A TLS listener answers
// for `_tsmuxd._tcp`, a type of our own, so usbfluxd never finds it and
// fails to connect; a --remote-insecure one for usbfluxd's
// `_remote-mobdev._tcp`, so usbfluxd can use it. Discovery (off unless
// asked) adds what it finds: our TLS instances, and usbfluxd's plain ones
// only with `--remote-discover all`. Every table is capped and packets are
// rate-limited, as in src/wifi/mdns-browser.ts.
import { hostname, networkInterfaces } from 'node:os';

import { openMdns, type MdnsAnswer, type MdnsPacket, type MdnsSocket } from '../protocol/mdns.js';
import { TSMUXD_SERVICE, USBFLUXD_SERVICE } from '../protocol/remote-messages.js';
import type { Logger } from '../util/log.js';

/** Instances remembered (found, added or not); the oldest makes room. */
export const MAX_DISCOVERED = 64;
/** Packets handled a second; the rest are dropped unread. */
export const MAX_PACKETS_PER_SECOND = 200;
/** Records looked at in one packet; a packet with more is dropped. */
export const MAX_RECORDS_PER_PACKET = 64;
const QUERY_INTERVAL_MS = 30_000;
const TTL_S = 120;

export interface RemoteDiscoveryOptions {
  log: Logger;
  /** Answer for our listener: its port, and whether it is TLS (our type) or plain (usbfluxd's). */
  advertise?: { port: number; tls: boolean; host?: string };
  discover: 'off' | 'tls' | 'all';
  /** An instance was found: host (an address), port, and whether it is ours (TLS). */
  found: (host: string, port: number, tls: boolean) => Promise<void>;
}

interface Seen {
  service: string;
  port?: number;
  target?: string;
}

export class RemoteDiscovery {
  private socket?: MdnsSocket;
  private timer?: NodeJS.Timeout;
  private readonly seen = new Map<string, Seen>();
  private readonly addresses = new Map<string, string>();
  private readonly reported = new Set<string>();
  private windowStart = 0;
  private packets = 0;
  private readonly instanceName: string;
  private readonly targetName: string;

  constructor(private readonly options: RemoteDiscoveryOptions) {
    const host = hostname().replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40) || 'host';
    const port = options.advertise?.port ?? 0;
    const service = options.advertise?.tls === false ? USBFLUXD_SERVICE : TSMUXD_SERVICE;
    this.instanceName = `tsmuxd-${host}-${port}.${service}`;
    this.targetName = `tsmuxd-${host}-${port}.local`;
  }

  private get services(): string[] {
    const { discover } = this.options;
    return discover === 'all' ? [TSMUXD_SERVICE, USBFLUXD_SERVICE] : discover === 'tls' ? [TSMUXD_SERVICE] : [];
  }

  start(): void {
    // Loopback on: another daemon on this host (a test, a second muxer) hears us.
    const socket = (this.socket = openMdns({ loopback: true }));
    socket.on('error', (err) => this.options.log.warning(`DNS-SD: ${err.message}`));
    socket.on('warning', (err) => this.options.log.debug(`DNS-SD: ${err.message}`));
    socket.on('query', (packet) => this.limited() && this.answer(packet));
    socket.on('response', (packet) => this.limited() && this.read(packet));
    if (this.options.advertise) this.announce();
    if (this.services.length) {
      this.query();
      this.timer = setInterval(() => this.query(), QUERY_INTERVAL_MS);
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.socket?.destroy();
    this.socket = undefined;
  }

  private limited(): boolean {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.packets = 0;
    }
    return ++this.packets <= MAX_PACKETS_PER_SECOND;
  }

  private query(): void {
    this.socket?.query({ questions: this.services.map((name) => ({ name, type: 'PTR' })) });
  }

  private records(): MdnsAnswer[] {
    const a = this.options.advertise!;
    const service = a.tls ? TSMUXD_SERVICE : USBFLUXD_SERVICE;
    const addresses = a.host && a.host !== '0.0.0.0' && a.host !== '::' ? [a.host] : localAddresses();
    return [
      { name: service, type: 'PTR', ttl: TTL_S, data: this.instanceName },
      { name: this.instanceName, type: 'SRV', ttl: TTL_S, data: { port: a.port, target: this.targetName, priority: 0, weight: 0 } },
      { name: this.instanceName, type: 'TXT', ttl: TTL_S, data: [Buffer.from(`tls=${a.tls ? 1 : 0}`)] },
      ...addresses.map((address) => ({ name: this.targetName, type: address.includes(':') ? 'AAAA' : 'A', ttl: TTL_S, data: address })),
    ];
  }

  private announce(): void {
    this.socket?.respond({ answers: this.records() });
  }

  private answer(packet: MdnsPacket): void {
    if (!this.options.advertise) return;
    const service = this.options.advertise.tls ? TSMUXD_SERVICE : USBFLUXD_SERVICE;
    if ((packet.questions ?? []).some((q) => q.name === service || q.name === this.instanceName)) this.announce();
  }

  private read(packet: MdnsPacket): void {
    const records = [...(packet.answers ?? []), ...(packet.additionals ?? [])];
    if (records.length > MAX_RECORDS_PER_PACKET) return;
    const services = this.services;
    for (const r of records) {
      if (r.type === 'PTR' && services.includes(r.name) && typeof r.data === 'string' && r.data !== this.instanceName) {
        this.remember(r.data, { service: r.name });
      } else if (r.type === 'SRV' && this.seen.has(r.name)) {
        const d = r.data as { port?: number; target?: string };
        const s = this.seen.get(r.name)!;
        if (typeof d?.port === 'number' && typeof d.target === 'string' && d.target.length <= 255) Object.assign(s, { port: d.port, target: d.target });
      } else if ((r.type === 'A' || r.type === 'AAAA') && typeof r.data === 'string' && r.name.length <= 255) {
        if (this.addresses.size >= MAX_DISCOVERED * 2) this.addresses.delete(this.addresses.keys().next().value!);
        this.addresses.set(r.name, r.data);
      }
    }
    for (const [name, s] of this.seen) {
      const address = s.target ? this.addresses.get(s.target) : undefined;
      if (!address || !s.port || this.reported.has(name)) continue;
      this.reported.add(name);
      const tls = s.service === TSMUXD_SERVICE;
      this.options.log.info(`DNS-SD: found ${name} at ${address}:${s.port}`);
      this.options.found(address, s.port, tls).catch((err: unknown) => this.options.log.warning(`DNS-SD: adding ${name} failed: ${(err as Error).message}`));
    }
  }

  private remember(name: string, s: Seen): void {
    if (this.seen.has(name) || name.length > 255) return;
    if (this.seen.size >= MAX_DISCOVERED) {
      const oldest = this.seen.keys().next().value!;
      this.seen.delete(oldest);
      this.reported.delete(oldest);
    }
    this.seen.set(name, s);
  }
}

function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') out.push(a.address);
  }
  return out.length ? out : ['127.0.0.1'];
}
