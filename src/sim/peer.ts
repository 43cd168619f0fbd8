// A simulated phone on a virtual cable or on a real USB gadget (FunctionFS):
// the device-role mux plus the echo, sink and source services, lockdownd on 62078 (pairing with a trust dialog, TLS
// sessions) and the lockdown services StartService hands out (heartbeat,
// notification proxy) on fixed device ports.
import type { Server } from 'node:net';
import { join } from 'node:path';

import { MuxEngine } from '../devices/mux-engine.js';
import type { DeviceRoleOptions } from '../native.js';
import { iphoneDescriptor, PHONE_FFS_INTERFACES, type PhoneFfsInterface, type SimUsbIdentity } from './descriptor.js';
import { simIdentity, type SimIdentity, type SimIdentityOptions } from './identity.js';
import { startLockdownd, type Lockdownd, type TrustMode } from './lockdown/lockdownd.js';
import { ECHO_PORT, HEARTBEAT_PORT, LOCKDOWN_PORT, NOTIFICATION_PROXY_PORT, SINK_PORT, SOURCE_PORT } from './ports.js';
import { startEcho } from './services/echo.js';
import { HEARTBEAT_SERVICE, startHeartbeat, type HeartbeatOptions } from './services/heartbeat.js';
import {
  INSECURE_NOTIFICATION_PROXY_SERVICE,
  NOTIFICATION_PROXY_SERVICE,
  startNotificationProxy,
} from './services/notification-proxy.js';
import { startSink } from './services/sink.js';
import { startSource } from './services/source.js';

export interface PeerOptions extends Omit<DeviceRoleOptions, 'portMap'> {
  /** A virtual cable's listening path (the daemon's --cable). */
  cable?: string;
  /**
   * Or a mounted FunctionFS (e.g. '/dev/ffs-mux') of a USB gadget whose
   * configfs side (VID/PID, serial, configurations) is set up already: the
   * phone's mux interface goes on it, and each time the host configures the
   * gadget a new session starts under the same handle. `usb.serial` must be
   * the gadget's serial string, so that lockdownd's UDID matches the host's.
   */
  ffs?: string;
  /**
   * With `ffs`: mounted FunctionFS directories for the interfaces a phone
   * shows around the mux (PTP, audio, Apple USB Ethernet), held as
   * placeholders so the gadget's configurations can look like a phone's.
   */
  ffsInterfaces?: Partial<Record<PhoneFfsInterface, string>>;
  /** Serve the services on Unix sockets in this directory instead of TCP. */
  socketDir?: string;
  usb?: Partial<SimUsbIdentity>;
  /** What lockdownd reports (product type, iOS version, name...). */
  identity?: SimIdentityOptions;
  /** Share an engine (and its event thread) between several peers. */
  engine?: MuxEngine;
  /** How lockdownd answers Pair (default "auto"). */
  trust?: TrustMode;
  /** "auto" only: how long the trust dialog shows before it is accepted. */
  trustDelayMs?: number;
  /** Keep lockdownd's pair records in this directory. */
  stateDir?: string;
  heartbeat?: HeartbeatOptions;
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
  /** The user taps Trust on the pairing dialog. */
  trust(): void;
  /** The user taps Don't Trust. */
  deny(): void;
  close(): Promise<void>;
}

let serialCounter = 0;

export function simSerial(index = ++serialCounter): string {
  // 24 characters: the new-style serial, UDID with a dash after 8.
  return `00008101${(process.pid * 1000 + index).toString(16).toUpperCase().padStart(16, '0')}`;
}

export async function startPeer(options: PeerOptions): Promise<Peer> {
  if ((options.cable === undefined) === (options.ffs === undefined)) {
    throw new TypeError('startPeer needs exactly one of cable and ffs');
  }
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
  const lockdown = await startLockdownd(identity, options.socketDir ? join(options.socketDir, 'lockdown.sock') : undefined, {
    trust: options.trust,
    trustDelayMs: options.trustDelayMs,
    stateDir: options.stateDir,
  });
  servers.push(lockdown.server);
  services[LOCKDOWN_PORT] = lockdown.address;
  const lockdownd = lockdown.lockdownd;

  const heartbeat = await startHeartbeat(options.socketDir ? join(options.socketDir, 'heartbeat.sock') : undefined, options.heartbeat);
  servers.push(heartbeat.server);
  services[HEARTBEAT_PORT] = heartbeat.address;
  lockdownd.services.set(HEARTBEAT_SERVICE, { port: HEARTBEAT_PORT });
  const np = await startNotificationProxy(options.socketDir ? join(options.socketDir, 'notification_proxy.sock') : undefined);
  servers.push(np.server);
  services[NOTIFICATION_PROXY_PORT] = np.address;
  lockdownd.services.set(NOTIFICATION_PROXY_SERVICE, { port: NOTIFICATION_PROXY_PORT });
  lockdownd.services.set(INSECURE_NOTIFICATION_PROXY_SERVICE, { port: NOTIFICATION_PROXY_PORT, withoutSession: true });
  lockdownd.notificationListeners.push((name) => void np.post(name));

  const ownEngine = !options.engine;
  const engine = options.engine ?? new MuxEngine();
  const roleOptions: DeviceRoleOptions = {
    window: options.window,
    version: options.version,
    controlLogs: options.controlLogs,
    defaultLoopback: options.defaultLoopback ?? false,
    portMap: Object.entries(services).map(([port, at]) =>
      typeof at === 'string' ? { port: Number(port), path: at } : { port: Number(port), targetPort: at },
    ),
  };
  let handle: number;
  const placeholders: number[] = [];
  try {
    if (options.ffs !== undefined) {
      // The interfaces around the mux first: the gadget binds once the mux is up.
      for (const [kind, dir] of Object.entries(options.ffsInterfaces ?? {})) {
        placeholders.push(engine.attachFfsPlaceholder(dir, PHONE_FFS_INTERFACES[kind as PhoneFfsInterface]));
      }
      handle = engine.attachDeviceRoleFfs(options.ffs, roleOptions);
    } else {
      handle = engine.attachDeviceRole(options.cable!, iphoneDescriptor({ ...options.usb, serial }), roleOptions);
    }
  } catch (err) {
    lockdownd.close();
    for (const h of placeholders) engine.closeDevice(h);
    if (ownEngine) engine.close();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    throw err;
  }
  return {
    engine,
    handle,
    serial,
    identity,
    lockdownd,
    services,
    trust: () => lockdownd.trust(),
    deny: () => lockdownd.deny(),
    async close() {
      lockdownd.close();
      if (ownEngine) engine.close();
      else for (const h of [handle, ...placeholders]) engine.closeDevice(h);
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of servers) s.unref();
    },
  };
}
