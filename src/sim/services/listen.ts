// Services listen on an ephemeral loopback port or on a Unix socket path, so
// many simulated phones run side by side on one machine.
import { lstatSync, unlinkSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';

import type { PortTarget } from '../../native/addon.js';

/** A Unix socket path, or omitted for an ephemeral 127.0.0.1 port. */
export type ServiceAddress = string | undefined;

export async function listenService(server: Server, at: ServiceAddress): Promise<string | number> {
  if (at) removeStaleSocket(at);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (at) server.listen(at, resolve);
    else server.listen(0, '127.0.0.1', resolve);
  });
  return at ?? (server.address() as AddressInfo).port;
}

/** Where the device-role mux connects for a service listening at `address`. */
export function portTarget(address: string | number): PortTarget {
  return typeof address === 'string' ? { path: address } : { targetPort: address };
}

/**
 * A socket file left by a phone that was killed (the supervisor restarts it
 * with the same socket directory, which is that phone's alone). Only a
 * socket is removed, never another kind of file.
 */
export function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
}
