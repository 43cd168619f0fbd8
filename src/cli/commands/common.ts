// What the user commands share: the --socket/--json options, where the
// daemon is by default, and output. Their table is index.ts.
import { existsSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { UsbmuxClient } from '../../client/usbmux-client.js';
import {
  clientSocketAddress,
  defaultSocketPath,
  formatSocketAddress,
  parseSocketAddress,
  platformSocketAddress,
  type SocketAddress,
} from '../../protocol/address.js';
import { UsageError } from '../usage-error.js';

export { table } from '../../util/text-table.js';

export { UsageError };

export const COMMON_OPTIONS = {
  socket: { type: 'string', short: 'S' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const COMMON_HELP = `  -S, --socket ADDR   the daemon: PATH, UNIX:PATH or HOST:PORT (default: USBMUXD_SOCKET_ADDRESS,
                      else /var/run/usbmuxd (Linux, macOS) or 127.0.0.1:27015 (Windows); on Linux
                      the per-user tsmuxd socket if only that exists)
      --json          JSON output (one object per line where output streams)
  -h, --help          this text
`;

/** node:util parseArgs (strict), with its errors turned into usage errors. */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ strict: true, ...config });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** What daemonAddress looks at besides its arguments; tests inject another platform. */
export interface AddressEnvironment {
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  exists?: (path: string) => boolean;
}

/**
 * Where the daemon is: --socket, else USBMUXD_SOCKET_ADDRESS (as libusbmuxd),
 * else the platform's usbmuxd (/var/run/usbmuxd; 127.0.0.1:27015 on
 * Windows). A non-root tsmuxd (Linux only) listens in the user's runtime
 * dir, so that is used when it exists and the system socket does not.
 */
export function daemonAddress(socket: string | undefined, where: AddressEnvironment = {}): SocketAddress {
  const { env = process.env, platform = process.platform, exists = existsSync } = where;
  if (socket) {
    try {
      return parseSocketAddress(socket);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  try {
    if (env.USBMUXD_SOCKET_ADDRESS) return clientSocketAddress(env, platform);
  } catch (err) {
    throw new UsageError(`USBMUXD_SOCKET_ADDRESS: ${(err as Error).message}`);
  }
  const system = platformSocketAddress(platform);
  if (platform === 'linux' && system.kind === 'unix' && !exists(system.path)) {
    const user = defaultSocketPath();
    if (exists(user)) return { kind: 'unix', path: user };
  }
  return system;
}

export function clientFor(address: SocketAddress, timeoutMs = 10_000): UsbmuxClient {
  return new UsbmuxClient({ address, timeoutMs, progName: 'tsmuxd' });
}

export { formatSocketAddress };

export function jsonLine(value: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Resolves on the first SIGINT or SIGTERM; the handlers go away after it. */
export function untilSignal(): { done: Promise<NodeJS.Signals>; cancel(): void } {
  let cancel = () => {};
  const done = new Promise<NodeJS.Signals>((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      cancel();
      resolve(signal);
    };
    process.once('SIGINT', on);
    process.once('SIGTERM', on);
    cancel = () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    };
  });
  return { done, cancel };
}

// ---- human-readable figures ----

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[u]}`;
}

export function formatRate(bytesPerSecond: number | null | undefined): string {
  return bytesPerSecond === null || bytesPerSecond === undefined ? '-' : `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

export function hex(n: number, width = 4): string {
  return `0x${n.toString(16).padStart(width, '0')}`;
}

