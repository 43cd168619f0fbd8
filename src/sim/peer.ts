// A simulated phone on a virtual cable or on a real USB gadget (FunctionFS):
// the device-role mux plus the echo, sink and
// source test services on fixed ports, lockdownd on 62078 (pairing with a
// trust dialog, TLS sessions) and the lockdown services StartService hands
// out on fresh one-connection ports (heartbeat, notification proxy, AFC),
// and from iOS 17.4 the CoreDeviceProxy tunnel (tunnel/sim-tunnels.ts).
// It can be unplugged and plugged back, and re-enumerates when the user
// taps Trust, as a phone does.
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';

import { MuxEngine } from '../native/mux-engine.js';
import type { DeviceRoleOptions, PortTarget, TestServiceKind } from '../native/addon.js';
import { nativeTesting, type RawBulkDevice } from '../native/testing.js';
import { ServiceOwner, ServiceRegistry, type BootstrapNamespace, type ServiceDescription } from '../registry/index.js';
import { iphoneDescriptor, PHONE_FFS_INTERFACES, type PhoneFfsInterface, type SimUsbIdentity } from './descriptor.js';
import { simIdentity, type SimIdentity, type SimIdentityOptions } from './identity.js';
import type { TrustMode } from '../protocol/sim-control.js';
import { startLockdownd, type Lockdownd } from './lockdown/lockdownd.js';
import { REQUEST_PAIR_NOTIFICATION } from './lockdown/values.js';
import { ECHO_PORT, ECHO_SERVICE, LOCKDOWN_PORT, SINK_PORT, SINK_SERVICE, SOURCE_PORT, SOURCE_SERVICE } from '../protocol/sim-ports.js';
import { AFC2_SERVICE, AFC_SERVICE, afcConnectionHandler, startAfc } from './services/afc.js';
import { portTarget, removeStaleSocket } from './services/listen.js';
import { startTlsFront } from './services/tls-front.js';
import { HEARTBEAT_SERVICE, startHeartbeat, type HeartbeatOptions } from './services/heartbeat.js';
import {
  INSECURE_NOTIFICATION_PROXY_SERVICE,
  NOTIFICATION_PROXY_SERVICE,
  startNotificationProxy,
} from './services/notification-proxy.js';
import { openSimState } from './state.js';
import { simRsdProperties, startRsdServer, type RsdServer } from './rsd/rsd-server.js';
import { simRsdServices } from './rsd/sim-services.js';
import { checkSimTunnelOptions, SimTunnels, type SimTunnelEvent, type SimTunnelOptions } from './tunnel/sim-tunnels.js';
import { startPhoneOnWifi, type SimWifi, type SimWifiOptions } from './wifi/sim-wifi.js';

export interface PeerOptions extends Omit<DeviceRoleOptions, 'portMap'> {
  /** A virtual cable's listening path (the daemon's --cable). */
  cable?: string;
  /**
   * On the network too (or only): lockdownd and the services at this address
   * over TCP, announced over mDNS (src/sim/wifi). Without a cable or
   * FunctionFS the phone is on the network alone.
   */
  wifi?: SimWifiOptions;
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
  /** Share a service registry between several peers (each gets the namespace of its UDID). */
  registry?: ServiceRegistry;
  /** Share an engine (and its event thread) between several peers. */
  engine?: MuxEngine;
  /** How lockdownd answers Pair (default "auto"). */
  trust?: TrustMode;
  /** "auto" only: how long the trust dialog shows before it is accepted. */
  trustDelayMs?: number;
  /** Keep the phone's serial, values, device key and pair records here (src/sim/state.ts). */
  stateDir?: string;
  /** Drop off USB and come back when the user taps Trust (default true, as a phone does). */
  reenumerateOnTrust?: boolean;
  /** How long an unplug lasts when the phone re-enumerates (default 500 ms). */
  replugDelayMs?: number;
  heartbeat?: HeartbeatOptions;
  /** Directory-backed AFC storage instead of memory. */
  afcRoot?: string;
  /** Offer com.apple.afc2 (the whole filesystem, with service TLS), as a jailbroken phone does. */
  jailbroken?: boolean;
  /**
   * Serve RemoteServiceDiscovery in direct mode on this loopback port (0: any
   * free port), with RSDCheckin shims for the lockdown services (docs/xpc.md).
   */
  rsdPort?: number;
  /** The phone's side of CoreDeviceProxy tunnels: its largest MTU, oversize drops, loss. */
  tunnel?: SimTunnelOptions;
  /** A tunnel opened, closed or was refused (with why). */
  onTunnel?: (event: SimTunnelEvent) => void;
  /** The host answered the mux handshake on the current link. */
  onReady?: () => void;
  /** The link went away without unplug() (the host hung up, the cable broke). */
  onLinkLost?: (reason: string) => void;
  /**
   * FunctionFS only: no mux. Each ENABLE starts the raw bulk measuring device
   * of native/testing/raw_bulk.h (SINK, SOURCE, ECHO commands) from the
   * testing addon, for the lab's benchmark ceiling (docs/benchmarks.md).
   */
  raw?: boolean;
  /** With `raw`: the raw bulk device's log lines (it has no mux events). */
  onRawLog?: (level: string, text: string) => void;
}

export interface Peer {
  engine: MuxEngine;
  /** The current device-role link (a new one after every plug). */
  handle: number;
  serial: string;
  /** What lockdownd (device port 62078) reports, UDID included. */
  identity: SimIdentity;
  lockdownd: Lockdownd;
  /** Device port -> where its fixed-port service listens (a TCP port or a socket path). */
  services: Record<number, string | number>;
  /** The phone's namespace in the service registry (its StartService table). */
  namespace: BootstrapNamespace;
  /** The RSD endpoint, with `rsdPort`. */
  rsd?: RsdServer;
  /** The CoreDeviceProxy tunnels the host has open. */
  tunnels: SimTunnels;
  /** The phone's network side, with `wifi`. */
  wifi?: SimWifi;
  readonly plugged: boolean;
  /** The user taps Trust on the pairing dialog. */
  trust(): void;
  /** The user taps Don't Trust. */
  deny(): void;
  /** Pulls the cable: every mux connection is reset, the host sees a detach. */
  unplug(): void;
  /** Plugs back in (a fresh mux session; the host gives it a new DeviceID). */
  plug(): void;
  /** unplug(), then plug() after `delayMs`. */
  replug(delayMs?: number): Promise<void>;
  close(): Promise<void>;
}

const REENUMERATE_AFTER_PAIR_MS = 200;
const REENUMERATE_FALLBACK_MS = 5000;

let serialCounter = 0;

export function simSerial(index = ++serialCounter): string {
  // 24 characters: the new-style serial, UDID with a dash after 8.
  return `00008101${(process.pid * 1000 + index).toString(16).toUpperCase().padStart(16, '0')}`;
}

type Started = { server: Server; address: string | number };

const MEASURING: Record<number, PortTarget> = {
  [ECHO_PORT]: { builtin: 'echo' },
  [SINK_PORT]: { builtin: 'sink' },
  [SOURCE_PORT]: { builtin: 'source' },
};

export async function startPeer(options: PeerOptions): Promise<Peer> {
  if (options.cable !== undefined && options.ffs !== undefined) {
    throw new TypeError('a simulated phone is on a cable or a FunctionFS mount, not both');
  }
  if (options.cable === undefined && options.ffs === undefined && !options.wifi) {
    throw new TypeError('a simulated phone needs a cable, a FunctionFS mount or the network');
  }
  if (options.raw && options.ffs === undefined) throw new TypeError('raw mode runs on a FunctionFS mount only');
  checkSimTunnelOptions(options.tunnel ?? {});
  const servers: Server[] = [];
  const at = (name: string) => (options.socketDir ? join(options.socketDir, `${name}.sock`) : undefined);
  const start = async (name: string, run: (address?: string) => Promise<Started>): Promise<Started> => {
    const s = await run(at(name));
    servers.push(s.server);
    return s;
  };

  const state = options.stateDir
    ? openSimState(options.stateDir, { serial: options.usb?.serial, identity: options.identity, newSerial: () => simSerial() })
    : undefined;
  const serial = state?.serial ?? options.usb?.serial ?? simSerial();
  const identity = simIdentity(serial, state?.identity ?? options.identity, state?.deviceKey);

  // The phone's services live in its own namespace of the registry: lockdownd's
  // StartService table and (with RSD) the Services list both come from it.
  const ownRegistry = !options.registry;
  const registry =
    options.registry ?? new ServiceRegistry({ socketDir: options.socketDir ? join(options.socketDir, 'registry') : undefined });
  const namespace = registry.namespace(identity.udid);
  const register = (name: string, started: Started, description?: ServiceDescription) =>
    namespace.register(name, ServiceOwner.forServer(name, started.server), started.address, description);
  /** Lives as long as the phone: it holds the on-demand services' check-ins. */
  const phoneOwner = new ServiceOwner(`sim ${identity.udid}`);

  const ownEngine = !options.engine;
  const engine = options.engine ?? new MuxEngine();
  // The measuring services run in C++ on the engine's thread (no JS on their
  // data path) and live as long as the phone.
  const measuring = (name: string, kind: TestServiceKind, devicePort: number) => {
    const path = at(kind);
    if (path) removeStaleSocket(path);
    namespace.register(name, phoneOwner, engine.startTestService(kind, path), { devicePort });
  };
  measuring(ECHO_SERVICE, 'echo', ECHO_PORT);
  measuring(SINK_SERVICE, 'sink', SINK_PORT);
  measuring(SOURCE_SERVICE, 'source', SOURCE_PORT);

  const lockdown = await startLockdownd(identity, at('lockdown'), {
    trust: options.trust,
    trustDelayMs: options.trustDelayMs,
    stateDir: state?.pairRecordDir,
    services: namespace,
  });
  servers.push(lockdown.server);
  const lockdownd = lockdown.lockdownd;

  register(HEARTBEAT_SERVICE, await start('heartbeat', (a) => startHeartbeat(a, options.heartbeat)));
  const np = await startNotificationProxy(at('notification_proxy'));
  servers.push(np.server);
  register(NOTIFICATION_PROXY_SERVICE, np);
  namespace.register(INSECURE_NOTIFICATION_PROXY_SERVICE, ServiceOwner.forServer('notification proxy', np.server), np.address, {
    withoutSession: true,
  });
  lockdownd.notificationListeners.push((name) => void np.post(name));
  // AFC starts on demand, at the first StartService, as on a phone; its
  // files outlive a restart of the service.
  let afc: ((socket: Socket) => void) | undefined;
  await namespace.declare(AFC_SERVICE, {
    start: (name, ns) => {
      afc ??= afcConnectionHandler({ root: options.afcRoot });
      ns.checkIn(name, phoneOwner, afc);
    },
  });
  if (options.jailbroken) {
    const afc2 = await start('afc2', (a) => startAfc(a));
    const front = await start('afc2-tls', (a) => startTlsFront(afc2.address, () => lockdownd.serviceTlsIdentity(), a));
    register(AFC2_SERVICE, front, { tls: 'full' });
  }

  /** Device port -> where it is served: the fixed-port services of the namespace and lockdownd. */
  const services: Record<number, string | number> = {};
  for (const s of namespace.list()) if (s.devicePort !== undefined) services[s.devicePort] = s.address;
  services[LOCKDOWN_PORT] = lockdown.address;
  const closeServices = async () => {
    phoneOwner.die('the phone closed');
    if (ownRegistry) await registry.close();
    else await registry.closeNamespace(identity.udid);
  };

  // RSD and its shims: on rsdPort in direct mode, and behind every tunnel's
  // serverRSDPort (started with the first tunnel when there is no rsdPort).
  const rsdServices = simRsdServices(namespace, lockdown.address);
  let rsdStart: Promise<RsdServer> | undefined;
  const rsdEndpoint = (port = 0) =>
    (rsdStart ??= startRsdServer({ port, properties: simRsdProperties(identity), services: rsdServices.provider }));
  const closeRsd = () => Promise.all([rsdStart?.then((r) => r.close(), () => undefined), rsdServices.close()]);
  const rsd = options.rsdPort !== undefined ? await rsdEndpoint(options.rsdPort) : undefined;

  const descriptor = iphoneDescriptor({ ...options.usb, serial });
  const roleOptions: DeviceRoleOptions = {
    window: options.window,
    version: options.version,
    controlLogs: options.controlLogs,
    defaultLoopback: options.defaultLoopback ?? false,
    // The measuring ports are served inside the engine (no loopback hop on the
    // phone's side); their listeners are for reaching them directly.
    portMap: Object.entries(services).map(([port, where]) => ({ port: Number(port), ...(MEASURING[Number(port)] ?? portTarget(where)) })),
  };
  let handle = 0;
  const tunnels = new SimTunnels({
    ...options.tunnel,
    engine,
    handle: () => handle,
    endpoints: async () => ({ // inside a tunnel each service keeps the port number it is listed with
      rsdPort: (await rsdEndpoint()).port,
      ports: [
        ...(await rsdServices.provider()).map((s) => ({ port: s.port, targetPort: s.port })),
        ...Object.keys(MEASURING).map((port) => ({ port: Number(port), ...portTarget(services[Number(port)]!) })),
      ],
    }),
    onEvent: options.onTunnel,
  });
  const placeholders: number[] = [];
  let wifi: SimWifi | undefined;
  let replugTimer: NodeJS.Timeout | undefined;
  let closed = false;

  // The lab's raw bulk device is in the testing addon, on a thread of its own.
  let rawDevice: RawBulkDevice | undefined;
  const plug = () => {
    if (handle || rawDevice || closed) return;
    if (options.cable === undefined && options.ffs === undefined) return;  // on the network only
    if (options.raw) {
      rawDevice = new (nativeTesting().RawBulkDevice)(options.ffs!, (level, text) => options.onRawLog?.(level, text));
      return;
    }
    handle =
      options.ffs !== undefined
        ? engine.attachDeviceRoleFfs(options.ffs, roleOptions)
        : engine.attachDeviceRole(options.cable!, descriptor, roleOptions);
    const link = handle;
    lockdownd.servicePorts.attach((port, target) => engine.mapDevicePort(link, port, target));
  };
  const unplug = () => {
    clearTimeout(replugTimer);
    replugTimer = undefined;
    rawDevice?.close();
    rawDevice = undefined;
    if (!handle) return;
    lockdownd.servicePorts.attach(undefined);
    engine.closeDevice(handle);
    handle = 0;
  };
  const replug = (delayMs = options.replugDelayMs ?? 500) =>
    new Promise<void>((resolve) => {
      unplug();
      replugTimer = setTimeout(() => {
        replugTimer = undefined;
        plug();
        resolve();
      }, delayMs);
      replugTimer.unref();
    });

  const onReady = (r: { handle: number }) => {
    if (r.handle === handle && handle) options.onReady?.();
  };
  const onDetached = (d: { handle: number; reason: string }) => {
    if (d.handle !== handle || !handle) return;
    if (options.ffs !== undefined) {
      // The host unconfigured or unplugged the gadget; the function stays and
      // its next ENABLE is a new session under the same handle.
      lockdownd.servicePorts.clear();
      options.onLinkLost?.(d.reason);
      return;
    }
    handle = 0;
    lockdownd.servicePorts.attach(undefined);
    options.onLinkLost?.(d.reason);
  };
  engine.on('ready', onReady);
  engine.on('detached', onDetached);

  // On FunctionFS the lab's gadget script owns plugging (the UDC binding).
  if (options.reenumerateOnTrust !== false && options.ffs === undefined) {
    // A phone drops off USB after the Trust tap. It goes once the host that
    // paired has closed that lockdown connection (so the Pair answer is not
    // lost with the link), or after REENUMERATE_FALLBACK_MS in any case.
    // One tap, one re-enumeration.
    let pending: NodeJS.Timeout | undefined;
    const reenumerate = (afterMs: number) => {
      clearTimeout(pending);
      pending = setTimeout(() => {
        pending = undefined;
        void replug();
      }, afterMs);
      pending.unref();
    };
    lockdownd.notificationListeners.push((name) => {
      if (name === REQUEST_PAIR_NOTIFICATION) reenumerate(REENUMERATE_FALLBACK_MS);
    });
    lockdownd.trustedPairListeners.push(() => {
      if (pending) reenumerate(REENUMERATE_AFTER_PAIR_MS);
    });
  }
  try {
    // The interfaces a phone shows around the mux go on the gadget first: it
    // is bound once the mux function is up.
    for (const [kind, dir] of Object.entries(options.ffs !== undefined ? (options.ffsInterfaces ?? {}) : {})) {
      placeholders.push(engine.attachFfsPlaceholder(dir, PHONE_FFS_INTERFACES[kind as PhoneFfsInterface]));
    }
    plug();
    if (options.wifi) wifi = await startPhoneOnWifi(options.wifi, lockdownd, services);
  } catch (err) {
    await wifi?.close();
    lockdownd.close();
    tunnels.close();
    for (const h of placeholders) engine.closeDevice(h);
    for (const srv of servers) srv.close();
    await closeRsd();
    if (ownEngine) engine.close();
    await closeServices();
    throw err;
  }

  return {
    engine,
    get handle() {
      return handle;
    },
    serial,
    identity,
    lockdownd,
    services,
    namespace,
    rsd,
    tunnels,
    get wifi() {
      return wifi;
    },
    get plugged() {
      return handle !== 0 || rawDevice !== undefined;
    },
    trust: () => lockdownd.trust(),
    deny: () => lockdownd.deny(),
    unplug,
    plug,
    replug,
    async close() {
      closed = true;
      unplug();
      await wifi?.close();
      engine.off('ready', onReady);
      engine.off('detached', onDetached);
      lockdownd.close();
      tunnels.close();
      if (ownEngine) engine.close();
      else for (const h of placeholders) engine.closeDevice(h);
      await closeRsd();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of servers) s.unref();
      await closeServices();
    },
  };
}
