// A minimal simulated phone on a cable: the device-role mux plus the echo,
// sink and source services. The full simulator (lockdownd, pairing, the
// service registry) builds on this.
import type { Server } from 'node:net';
import { join } from 'node:path';

import { MuxEngine } from '../devices/mux-engine.js';
import type { DeviceRoleOptions } from '../native.js';
import { iphoneDescriptor, type SimUsbIdentity } from './descriptor.js';
import { ECHO_PORT, SINK_PORT, SOURCE_PORT } from './ports.js';
import { startEcho } from './services/echo.js';
import { startSink } from './services/sink.js';
import { startSource } from './services/source.js';

export interface PeerOptions extends Omit<DeviceRoleOptions, 'portMap'> {
  cable: string;
  /** Serve the services on Unix sockets in this directory instead of TCP. */
  socketDir?: string;
  usb?: Partial<SimUsbIdentity>;
  /** Share an engine (and its event thread) between several peers. */
  engine?: MuxEngine;
}

export interface Peer {
  engine: MuxEngine;
  handle: number;
  serial: string;
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
  const ownEngine = !options.engine;
  const engine = options.engine ?? new MuxEngine();
  const serial = options.usb?.serial ?? simSerial();
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
    services,
    async close() {
      if (ownEngine) engine.close();
      else engine.closeDevice(handle);
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of servers) s.unref();
    },
  };
}
