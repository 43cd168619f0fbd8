// A minimal simulated phone on a cable: the device-role mux plus the echo,
// sink and source services. The full simulator (lockdownd, pairing, the
// service registry) builds on this.
import type { Server } from 'node:net';

import { MuxEngine } from '../devices/mux-engine.js';
import type { DeviceRoleOptions } from '../native.js';
import { iphoneDescriptor, type SimUsbIdentity } from './descriptor.js';
import { ECHO_PORT, SINK_PORT, SOURCE_PORT } from './ports.js';
import { startEcho } from './services/echo.js';
import { startSink } from './services/sink.js';
import { startSource } from './services/source.js';

export interface PeerOptions extends Omit<DeviceRoleOptions, 'portMap'> {
  cable: string;
  usb?: Partial<SimUsbIdentity>;
  /** Share an engine (and its event thread) between several peers. */
  engine?: MuxEngine;
}

export interface Peer {
  engine: MuxEngine;
  handle: number;
  serial: string;
  servicePorts: Record<number, number>;
  close(): Promise<void>;
}

let serialCounter = 0;

export function simSerial(index = ++serialCounter): string {
  // 24 characters: the new-style serial, UDID with a dash after 8.
  return `00008101${(process.pid * 1000 + index).toString(16).toUpperCase().padStart(16, '0')}`;
}

export async function startPeer(options: PeerOptions): Promise<Peer> {
  const servers: Server[] = [];
  const services: Record<number, number> = {};
  for (const [port, start] of [
    [ECHO_PORT, startEcho],
    [SINK_PORT, startSink],
    [SOURCE_PORT, startSource],
  ] as const) {
    const s = await start();
    servers.push(s.server);
    services[port] = s.port;
  }
  const ownEngine = !options.engine;
  const engine = options.engine ?? new MuxEngine();
  const serial = options.usb?.serial ?? simSerial();
  const handle = engine.attachDeviceRole(options.cable, iphoneDescriptor({ ...options.usb, serial }), {
    window: options.window,
    version: options.version,
    controlLogs: options.controlLogs,
    defaultLoopback: options.defaultLoopback ?? false,
    portMap: Object.entries(services).map(([port, targetPort]) => ({ port: Number(port), targetPort })),
  });
  return {
    engine,
    handle,
    serial,
    servicePorts: services,
    async close() {
      if (ownEngine) engine.close();
      else engine.closeDevice(handle);
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of servers) s.unref();
    },
  };
}
