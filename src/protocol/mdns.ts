// mDNS for `_apple-mobdev2._tcp` (reference tunnel-wifi-remote §3.1, §3.5):
// the typed part of the npm `multicast-dns` package both ends use (the
// daemon browses, the simulated phone answers), and the names and caps they
// share.
//
// Why multicast-dns: it is the small, widely used (60M downloads a month,
// MIT) socket-and-codec layer that bonjour-service itself is built on, and a
// browser for one service type is a PTR query and a packet handler, which
// we want to bound ourselves (per-packet and per-record caps, a rate limit).
// bonjour-service's browser keeps every service it hears in its own maps
// with no cap we control, and Avahi's D-Bus API needs avahi-daemon running,
// which containers and CI rarely have.
import { createRequire } from 'node:module';

export const MOBDEV2_SERVICE = '_apple-mobdev2._tcp.local';
export const MDNS_PORT = 5353;
/** What the phone's records live for (RFC 6762's host-record TTL is 120 s). */
export const MOBDEV2_TTL_S = 120;

/** An instance name longer than this is not a phone's (`<mac>@<ipv6>` is about 45). */
export const MAX_INSTANCE_LABEL = 128;
/** A TXT record with more strings, or more bytes in all, is dropped. */
export const MAX_TXT_STRINGS = 32;
export const MAX_TXT_BYTES = 1300;

export interface MdnsAnswer {
  name: string;
  type: string;
  ttl?: number;
  class?: string;
  flush?: boolean;
  data?: unknown;
}

export interface MdnsPacket {
  type?: 'query' | 'response';
  questions?: Array<{ name: string; type: string }>;
  answers?: MdnsAnswer[];
  additionals?: MdnsAnswer[];
  authorities?: MdnsAnswer[];
}

export interface RemoteInfo {
  address: string;
  family: string;
  port: number;
  size: number;
}

export interface MdnsSocket {
  on(event: 'response' | 'query', listener: (packet: MdnsPacket, rinfo: RemoteInfo) => void): this;
  on(event: 'error' | 'warning', listener: (err: Error) => void): this;
  on(event: 'ready', listener: () => void): this;
  query(packet: { questions: Array<{ name: string; type: string }> }, cb?: (err: Error | null) => void): void;
  respond(packet: { answers: MdnsAnswer[]; additionals?: MdnsAnswer[] }, cb?: (err: Error | null) => void): void;
  destroy(cb?: () => void): void;
}

export interface MdnsOptions {
  /** The interface address multicast goes out of (and whose group is joined). */
  interface?: string;
  /** Bind to this address (default: all). */
  bind?: string;
  /** Deliver our own packets back to us (default false: a phone and a browser in one process are the tests' business). */
  loopback?: boolean;
}

type Factory = (options: Record<string, unknown>) => MdnsSocket;

let factory: Factory | undefined;

/** An mDNS socket on 5353 (reuseAddr, so it shares the port with any other responder on the host). */
export function openMdns(options: MdnsOptions = {}): MdnsSocket {
  // Loaded when first used: only daemons with --wifi on and sims with --wifi pay for it.
  factory ??= createRequire(import.meta.url)('multicast-dns') as Factory;
  return factory({
    port: MDNS_PORT,
    reuseAddr: true,
    loopback: options.loopback ?? false,
    ...(options.interface ? { interface: options.interface } : {}),
    ...(options.bind ? { bind: options.bind } : {}),
  });
}

/** TXT data as `key=value` strings, or undefined when it is over the caps or not strings. */
export function decodeTxt(data: unknown): Map<string, string> | undefined {
  const items = Array.isArray(data) ? data : [data];
  if (items.length > MAX_TXT_STRINGS) return undefined;
  let total = 0;
  const out = new Map<string, string>();
  for (const item of items) {
    if (!Buffer.isBuffer(item) && typeof item !== 'string') return undefined;
    const text = Buffer.isBuffer(item) ? item.toString('utf8') : item;
    total += Buffer.byteLength(text);
    if (total > MAX_TXT_BYTES) return undefined;
    const eq = text.indexOf('=');
    if (eq <= 0) continue;
    const key = text.slice(0, eq).toLowerCase();
    // RFC 6763 §6.4: the first occurrence of a key wins.
    if (!out.has(key)) out.set(key, text.slice(eq + 1));
  }
  return out;
}

/** `<mac>@<addr>._apple-mobdev2._tcp.local` -> `<mac>@<addr>`, or undefined for another service or a bad label. */
export function instanceLabel(name: string): string | undefined {
  const suffix = `.${MOBDEV2_SERVICE}`;
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (!trimmed.toLowerCase().endsWith(suffix)) return undefined;
  const label = trimmed.slice(0, -suffix.length);
  return label.length > 0 && label.length <= MAX_INSTANCE_LABEL ? label : undefined;
}
