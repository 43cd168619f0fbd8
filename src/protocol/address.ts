// Where the daemon listens and where clients connect: a Unix path or TCP
// host:port, in the forms usbmuxd (-S) and libusbmuxd (USBMUXD_SOCKET_ADDRESS)
// accept, and where each platform's usbmuxd is by default.
import { homedir } from 'node:os';
import { join } from 'node:path';

export type SocketAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export const SYSTEM_SOCKET = '/var/run/usbmuxd';

/**
 * Apple Mobile Device Service on Windows has no Unix socket: it listens on
 * loopback TCP 27015, which is where libusbmuxd and iTunes look for it.
 */
export const WINDOWS_USBMUXD: SocketAddress = { kind: 'tcp', host: '127.0.0.1', port: 27015 };

/** Accepts `UNIX:/path`, `/path`, `host:port` and `[v6]:port`. */
export function parseSocketAddress(text: string): SocketAddress {
  if (text.startsWith('UNIX:')) return { kind: 'unix', path: text.slice(5) };
  if (text.startsWith('/') || text.startsWith('.')) return { kind: 'unix', path: text };
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  const v4 = /^([^:]+):(\d+)$/.exec(text);
  const m = v6 ?? v4;
  if (!m) throw new Error(`not a socket address: '${text}' (use PATH, UNIX:PATH, HOST:PORT or [V6]:PORT)`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`port out of range in '${text}'`);
  return { kind: 'tcp', host: m[1], port };
}

export function formatSocketAddress(a: SocketAddress): string {
  if (a.kind === 'unix') return `UNIX:${a.path}`;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export function sameSocketAddress(a: SocketAddress, b: SocketAddress): boolean {
  return formatSocketAddress(a) === formatSocketAddress(b);
}

/** /var/run/usbmuxd as root; otherwise a path in the user's runtime dir. */
export function defaultSocketPath(): string {
  if (process.getuid?.() === 0) return SYSTEM_SOCKET;
  const runtime = process.env.XDG_RUNTIME_DIR;
  return runtime ? join(runtime, 'tsmuxd.sock') : join(homedir(), '.tsmuxd.sock');
}

/**
 * Where the platform's own usbmuxd listens: Apple's on macOS and
 * libimobiledevice's on Linux at /var/run/usbmuxd, Apple Mobile Device
 * Service on Windows at 127.0.0.1:27015.
 */
export function platformSocketAddress(platform: NodeJS.Platform = process.platform): SocketAddress {
  return platform === 'win32' ? { ...WINDOWS_USBMUXD } : { kind: 'unix', path: SYSTEM_SOCKET };
}

/** What a client should use: USBMUXD_SOCKET_ADDRESS, else the platform's usbmuxd. */
export function clientSocketAddress(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): SocketAddress {
  const fromEnv = env.USBMUXD_SOCKET_ADDRESS;
  return fromEnv ? parseSocketAddress(fromEnv) : platformSocketAddress(platform);
}
