// How the benchmark reaches a port of the phone: a plain usbmuxd Connect,
// tsmuxd's TunnelConnect inside the CoreDeviceProxy tunnel, or, when the
// tunnel has a kernel interface, a plain socket to the phone's tunnel
// address. Each path marks the records it measures.
import net from 'node:net';

import type { UsbmuxClient, UsbmuxDevice } from '../client/index.js';
import type { SocketAddress } from '../protocol/address.js';
import { connectRequest, muxConnect } from './connect-rate.js';
import type { RttRecord, ThroughputRecord } from './records.js';

/** How a benchmark reaches a port of the phone: the socket that comes back is a raw pipe to it. */
export interface PortPath {
  open(device: UsbmuxDevice, port: number): Promise<net.Socket>;
  /** Marks the records (ThroughputRecord.tunnel, RttRecord.tunnel). */
  tunnel: boolean;
  /** With tunnel: through the kernel interface (ThroughputRecord.kernel, RttRecord.kernel). */
  kernel?: boolean;
}

/** A plain usbmuxd Connect (any daemon). */
export function muxPath(address: SocketAddress): PortPath {
  return { open: (device, port) => muxConnect(address, connectRequest(device.deviceId, port), true), tunnel: false };
}

/** A TCP connection inside the device's CoreDeviceProxy tunnel (tsmuxd's TunnelConnect). */
export function tunnelPath(client: UsbmuxClient): PortPath {
  return { open: (device, port) => client.tunnelConnect(device.deviceId, port), tunnel: true };
}

/**
 * The same port through the tunnel's kernel interface (tsmuxd as root, TUN
 * mode): a plain TCP socket to the phone's tunnel address, no daemon
 * request at all.
 */
export function kernelTunnelPath(serverAddress: string): PortPath {
  const open = (_device: UsbmuxDevice, port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: serverAddress, port });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  return { open, tunnel: true, kernel: true };
}

export function marked<R extends ThroughputRecord | RttRecord>(path: PortPath, record: R): R {
  if (!path.tunnel) return record;
  return path.kernel ? { ...record, tunnel: true, kernel: true } : { ...record, tunnel: true };
}
