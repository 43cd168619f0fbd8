// A minimal simulated phone on a cable: the device-role mux plus the echo,
// sink and source services and a first, plaintext lockdownd on 62078. The
// full simulator (pairing, TLS sessions, the service registry) builds on this.
import type { Server } from 'node:net';
import { join } from 'node:path';

import { MuxEngine } from '../devices/mux-engine.js';
import type { DeviceRoleOptions } from '../native.js';
import { iphoneDescriptor, type SimUsbIdentity } from './descriptor.js';
import { simIdentity, type SimIdentity, type SimIdentityOptions } from './identity.js';
import { startLockdownd, type Lockdownd } from './lockdown/lockdownd.js';
import { ECHO_PORT, LOCKDOWN_PORT, SINK_PORT, SOURCE_PORT } from './ports.js';
import { startEcho } from './services/echo.js';
import { startSink } from './services/sink.js';
import { startSource } from './services/source.js';

export interface PeerOptions extends Omit<DeviceRoleOptions, 'portMap'> {
  cable: string;
  /** Serve the services on Unix sockets in this directory instead of TCP. */
  socketDir?: string;
  usb?: Partial<SimUsbIdentity>;
  /** What lockdownd reports (product type, iOS version, name...). */
  identity?: SimIdentityOptions;
  /** Share an engine (and its event thread) between several peers. */
  engine?: MuxEngine;
}

export interface Peer {
  engine: MuxEngine;
  handle: number;
  serial: string;
  /** What lockdownd (device port 62078) reports, UDID included. */
  identity: SimIdentity;
  lockdownd: Lockdownd;
  /** Device port -> where its service listens (a TCP port or a socket path). */
  services: Record<number, string | number>;
  close(): Promise<void>;
}

let serialCounter = 0;

export function simSerial(index = ++serialCounter): string {
  // 24 characters: the new-style serial, UDID with a dash after 8.
  return `00008101${(process.pid * 1000 + index).toString(16).toUpperCase().padStart(16, '0')}`;
}

export async function startPeer(options: PeerOptions): Promise<Peer> {
  const servers: Server[] = [];
  const services: Record<number, string | number> = {};
  for (const [port, name, start] of [
    [ECHO_PORT, 'echo', startEcho],
    [SINK_PORT, 'sink', startSink],
    [SOURCE_PORT, 'source', startSource],
  ] as const) {
    const s = await start(options.socketDir ? join(options.socketDir, `${name}.sock`) : undefined);
    servers.push(s.server);
    services[port] = s.address;
  }
  const serial = options.usb?.serial ?? simSerial();
  const identity = simIdentity(serial, options.identity);
  const lockdown = await startLockdownd(identity, options.socketDir ? join(options.socketDir, 'lockdown.sock') : undefined);
  servers.push(lockdown.server);
  services[LOCKDOWN_PORT] = lockdown.address;
  const ownEngine = !options.engine;
  const engine = options.engine ?? new MuxEngine();
  const handle = engine.attachDeviceRole(options.cable, iphoneDescriptor({ ...options.usb, serial }), {
    window: options.window,
    version: options.version,
    controlLogs: options.controlLogs,
    defaultLoopback: options.defaultLoopback ?? false,
    portMap: Object.entries(services).map(([port, at]) =>
      typeof at === 'string' ? { port: Number(port), path: at } : { port: Number(port), targetPort: at },
    ),
  });
  return {
    engine,
    handle,
    serial,
    identity,
    lockdownd: lockdown.lockdownd,
    services,
    async close() {
      if (ownEngine) engine.close();
      else engine.closeDevice(handle);
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of servers) s.unref();
    },
  };
}
