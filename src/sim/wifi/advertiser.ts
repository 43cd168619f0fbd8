// The simulated phone's mDNS responder for `_apple-mobdev2._tcp`, as a phone
// on Wi-Fi announces itself (reference tunnel-wifi-remote §3.1): the
// instance `<Wi-Fi MAC>@<IPv6 link-local>`, SRV to the phone's host name,
// its A or AAAA record, and a TXT record. Classic phones put their real MAC
// in the name; with `privateAddress` the MAC is random and the TXT record
// carries `identifier` and one `authTag#i` per paired host instead.
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';

import { authTag } from '../../protocol/mobdev-auth-tag.js';
import { MOBDEV2_SERVICE, MOBDEV2_TTL_S, openMdns, type MdnsAnswer, type MdnsPacket, type MdnsSocket } from '../../protocol/mdns.js';
import { LOCKDOWN_PORT } from '../../protocol/sim-ports.js';

export interface AdvertiserOptions {
  /** The phone's address on the network. */
  address: string;
  /** Its real Wi-Fi MAC (lockdownd's WiFiAddress). */
  wifiMac: string;
  /** Use a random MAC in the name, and identifier/authTag in TXT. */
  privateAddress?: boolean;
  /** The HostIDs of the hosts it is paired with (read at every answer). */
  hostIds: () => string[];
  /** The name's host part (default: the phone's name made DNS-safe). */
  hostName?: string;
}

/** The EUI-64 link-local address a MAC gives (the part after `@`). */
export function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0] = b[0]! ^ 0x02;
  const w = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | 0xff, (0xfe << 8) | b[3]!, (b[4]! << 8) | b[5]!];
  return `fe80::${w.map((x) => x.toString(16)).join(':')}`;
}

export class MobdevAdvertiser {
  readonly instance: string;
  readonly identifier: string;
  private readonly host: string;
  private socket?: MdnsSocket;
  private online = false;

  constructor(private readonly o: AdvertiserOptions) {
    const mac = o.privateAddress ? randomMac() : o.wifiMac;
    this.instance = `${mac}@${linkLocalOf(mac)}.${MOBDEV2_SERVICE}`;
    this.identifier = randomBytes(16).toString('hex').toUpperCase();
    this.host = `${o.hostName ?? `iPhone-${mac.replace(/:/g, '').slice(-6)}`}.local`;
  }

  /** Opens the responder and announces (again, after off()). */
  on(): void {
    this.online = true;
    if (!this.socket) {
      this.socket = openMdns({ interface: isIPv4(this.o.address) ? this.o.address : undefined });
      this.socket.on('query', (packet) => this.onQuery(packet));
      this.socket.on('error', () => undefined);  // a send that failed; the next announcement retries
      this.socket.on('warning', () => undefined);
    }
    // RFC 6762 §8.3: announce twice, a second apart.
    this.announce();
    setTimeout(() => this.announce(), 1000).unref();
  }

  /** Stops answering, without a goodbye: a phone that walks out of range says none. */
  off(): void {
    this.online = false;
  }

  /** Says goodbye (TTL 0) and closes. */
  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => {
      const bye = this.records(0);
      socket.respond({ answers: bye.answers, additionals: bye.additionals }, () => socket.destroy(() => resolve()));
    });
  }

  private announce(): void {
    if (!this.online || !this.socket) return;
    this.socket.respond(this.records(MOBDEV2_TTL_S));
  }

  private onQuery(packet: MdnsPacket): void {
    if (!this.online || !this.socket) return;
    const asked = (packet.questions ?? []).some(
      (q) =>
        (q.name === MOBDEV2_SERVICE && (q.type === 'PTR' || q.type === 'ANY')) ||
        q.name === this.instance ||
        q.name === this.host,
    );
    if (asked) this.socket.respond(this.records(MOBDEV2_TTL_S));
  }

  private records(ttl: number): { answers: MdnsAnswer[]; additionals: MdnsAnswer[] } {
    const txt: string[] = [];
    if (this.o.privateAddress) {
      txt.push(`identifier=${this.identifier}`);
      this.o.hostIds().forEach((hostId, i) => txt.push(`authTag#${i}=${authTag(hostId, this.identifier)}`));
    } else {
      txt.push('');
    }
    return {
      answers: [{ name: MOBDEV2_SERVICE, type: 'PTR', ttl, data: this.instance }],
      additionals: [
        { name: this.instance, type: 'SRV', ttl, flush: true, data: { priority: 0, weight: 0, port: LOCKDOWN_PORT, target: this.host } },
        { name: this.instance, type: 'TXT', ttl, flush: true, data: txt.map((s) => Buffer.from(s)) },
        { name: this.host, type: isIPv4(this.o.address) ? 'A' : 'AAAA', ttl, flush: true, data: this.o.address },
      ],
    };
  }
}

function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! | 0x02) & 0xfe;  // locally administered, unicast: what a private address is
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
