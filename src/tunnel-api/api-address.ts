// Where the tunneld and go-ios APIs listen: `HOST:PORT`, `[::1]:PORT` or
// `off`. Only loopback is accepted. These APIs answer anyone who can reach
// them (start a tunnel, bridge into one), as the tools they imitate do, so
// the host is the access check: a non-loopback ADDR is refused where the
// option is read, not left to a firewall.
import { isIPv4, isIPv6 } from 'node:net';

export interface ApiAddress {
  /** A literal address: an IPv4 address in 127.0.0.0/8, or ::1. */
  host: string;
  /** 0 lets the kernel pick (tests). */
  port: number;
}

/** pymobiledevice3's TUNNELD_DEFAULT_ADDRESS (pymobiledevice3/tunneld/api.py). */
export const DEFAULT_TUNNELD_API = '127.0.0.1:49151';
/**
 * go-ios's defaultHttpApiPort in ios/connect.go. Its README and help text
 * say 28100; the code its clients run says 60105, and that is what they dial.
 */
export const DEFAULT_GO_IOS_API = '127.0.0.1:60105';

/** The longest ADDR we read: `[::1]:65535` is 11 characters; a typo is not 10 KiB. */
const MAX_ADDRESS_TEXT = 64;

export function isLoopbackHost(host: string): boolean {
  if (isIPv4(host)) return host.startsWith('127.');
  if (isIPv6(host)) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** `off` -> undefined; otherwise a loopback address, or a RangeError that says what is wrong. */
export function parseApiAddress(text: string): ApiAddress | undefined {
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === 'off') return undefined;
  if (trimmed.length > MAX_ADDRESS_TEXT) throw new RangeError(`'${trimmed.slice(0, MAX_ADDRESS_TEXT)}…' is not an address`);
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(trimmed);
  if (!m) throw new RangeError(`'${trimmed}' is not HOST:PORT, [::1]:PORT or off`);
  const named = (m[1] ?? m[2])!;
  // `localhost` may resolve to ::1 or to 127.0.0.1; binding needs one answer, and 127.0.0.1 is what the tools dial.
  const host = named.toLowerCase() === 'localhost' ? '127.0.0.1' : named;
  const port = Number(m[3]);
  if (port > 65535) throw new RangeError(`port ${port} is not in 0..65535`);
  if (!isIPv4(host) && !isIPv6(host)) throw new RangeError(`'${named}' is not an IP address (or localhost)`);
  if (!isLoopbackHost(host)) {
    throw new RangeError(`${named} is not a loopback address: these APIs start and bridge tunnels for whoever reaches them, so they listen on 127.0.0.1 or ::1 only`);
  }
  return { host: host === '0:0:0:0:0:0:0:1' ? '::1' : host, port };
}

export function formatApiAddress(a: ApiAddress): string {
  return isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
