// Services listen on an ephemeral loopback port or on a Unix socket path, so
// many simulated phones run side by side on one machine.
import type { AddressInfo, Server } from 'node:net';

import type { PortTarget } from '../../native.js';

/** A Unix socket path, or omitted for an ephemeral 127.0.0.1 port. */
export type ServiceAddress = string | undefined;

export async function listenService(server: Server, at: ServiceAddress): Promise<string | number> {
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
