// Where the daemon listens and where clients connect: a Unix path or TCP
// host:port, in the forms usbmuxd (-S) and libusbmuxd (USBMUXD_SOCKET_ADDRESS)
// accept.
import { homedir } from 'node:os';
import { join } from 'node:path';

export type SocketAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export const SYSTEM_SOCKET = '/var/run/usbmuxd';

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

/** /var/run/usbmuxd as root; otherwise a path in the user's runtime dir. */
export function defaultSocketPath(): string {
  if (process.getuid?.() === 0) return SYSTEM_SOCKET;
  const runtime = process.env.XDG_RUNTIME_DIR;
  return runtime ? join(runtime, 'tsmuxd.sock') : join(homedir(), '.tsmuxd.sock');
}

/** What a client should use: USBMUXD_SOCKET_ADDRESS, else the system socket. */
export function clientSocketAddress(env: NodeJS.ProcessEnv = process.env): SocketAddress {
  const fromEnv = env.USBMUXD_SOCKET_ADDRESS;
  return fromEnv ? parseSocketAddress(fromEnv) : { kind: 'unix', path: SYSTEM_SOCKET };
}
