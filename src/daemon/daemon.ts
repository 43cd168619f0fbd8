// The daemon assembled: data-plane engine, device table, pair-record store and
// the usbmuxd socket, plus cable listeners and simulated phones. The command
// (src/cli/daemon-command.ts) and the tests both start it through here.
//
// What only some daemons use is imported when it starts: USB discovery with
// USB on (the npm usb package once the phones present at start are listed,
// usb-start.ts), the sim supervisor with --sim. Every module a start loads
// delays the socket and the first listing, and under the USB lab's emulated
// CPU each file costs tens of milliseconds or more (docs/architecture.md,
// "Start-up").
import { chownSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { DeviceTable } from '../devices/device-table.js';
import { addTlsKeylogSink } from '../lockdown/keylog.js';
import { MuxEngine } from '../native/mux-engine.js';
import { Logger } from '../util/log.js';
import { chownTree } from '../pairing/safe-fs.js';
import { PairRecordStore } from '../pairing/store.js';
import { Preflight } from '../preflight/preflight.js';
import type { TrustMode } from '../protocol/sim-control.js';
import type { SimCommand } from '../supervisor/sim-process.js';
import type { SimSupervisor } from '../supervisor/supervisor.js';
import type { UsbDiscovery } from '../usb/discovery.js';
import type { TunnelApiAddresses, TunnelApis } from '../tunnel-api/tunnel-apis.js';
import type { WifiDevices, WifiSetting } from '../wifi/wifi-devices.js';
import type { SocketAddress } from '../protocol/address.js';
import { UsbmuxServer } from '../server/server.js';
import { DaemonRemote, type RemoteSettings } from './daemon-remote.js';
import { TunnelManager } from '../tunnel/tunnel-manager.js';
import { AutoTunnels, type TunnelsSetting } from '../tunnel/auto-tunnels.js';
import { KernelInterfaces, type TunSetting } from '../tunnel/kernel-interface.js';

export interface DaemonOptions {
  address: SocketAddress;
  configDir: string;
  log?: Logger;
  /** Accept virtual-cable devices on these paths. */
  cables?: string[];
  /** Attach this many simulated phones (child processes) over an internal cable. */
  sims?: number;
  /** How the simulated phones answer Pair (default auto). */
  simTrust?: TrustMode;
  /** Keep each simulated phone's identity and pair records under DIR/sim-<i> (default: a temp dir). */
  simStateDir?: string;
  /** On stop, how long a simulated phone gets after SIGTERM before SIGKILL (default 5 s). */
  simStopTimeoutMs?: number;
  /** Owner of the pair-record directory, and the user the simulated phones run as (tsmuxd -U). */
  uid?: number;
  gid?: number;
  connectTimeoutMs?: number;
  /** A device window shut this long with client bytes waiting resets the connection (MuxEngine's default when omitted). */
  zeroWindowTimeoutMs?: number;
  /** Receive window advertised per connection (MuxEngine's default when omitted). */
  window?: number;
  /** Extra `tsmuxd sim` arguments for every simulated phone (its iOS version, its tunnels' strictness). */
  simArgs?: string[];
  /** The send MSS of a tunnel whose start names none (1340 when omitted). */
  tunnelSendMss?: number;
  /**
   * 'auto': each phone preflight finds paired gets its CoreDeviceProxy
   * tunnel without being asked (iOS 17.4+). Off when omitted (library use
   * and tests); the command's default is auto.
   */
  tunnels?: TunnelsSetting;
  /** 'auto': each tunnel also gets a kernel interface where the daemon may make one. Off when omitted; the command's default is auto. */
  tun?: TunSetting;
  /** The kernel interfaces' name prefix (tsmux: tsmux0, tsmux1...). */
  tunPrefix?: string;
  /** Unread notifications after which a Listen client is closed (1 MiB when omitted). */
  maxUnreadNotificationBytes?: number;
  /** Check each phone through lockdownd (and pair it) before listing it; default true, off is usbmuxd's -p. */
  preflight?: boolean;
  /** Preflight: how often Pair is asked again while the Trust dialog shows. */
  preflightRetryMs?: number;
  /**
   * Real USB phones: 'hotplug' enumerates at start and follows plug events,
   * 'manual' enumerates at start and on discover() (tsmuxd -n), 'off' (the
   * default for library use and tests) never touches libusb. Where there is
   * no USB the daemon logs one warning and serves the rest.
   */
  usb?: 'off' | 'hotplug' | 'manual';
  /** pymobiledevice3's tunneld HTTP API on this loopback HOST:PORT (port 0: any); off when omitted or 'off'. */
  tunneldApi?: string;
  /** go-ios's tunnel agent HTTP API on this loopback HOST:PORT; off when omitted or 'off'. */
  goIosApi?: string;
  /**
   * 'auto': phones on the network (mDNS `_apple-mobdev2._tcp`, a heartbeat)
   * are listed as Network entries (docs/wifi.md). Off when omitted (library
   * use and tests); the command's default is auto.
   */
  wifi?: WifiSetting;
  /** Added to a network phone's heartbeat Interval before it counts as gone (5 s when omitted). */
  wifiGraceMs?: number;
  /** Capture everything that crosses the daemon from start-up into this pcapng file (docs/capture.md). */
  capture?: string;
  /** Remote usbmux (docs/remote.md); nothing listens or is added when omitted. */
  remote?: RemoteSettings;
}

/** How long a stopping daemon gives its captures to write their statistics. */
const CAPTURE_STOP_TIMEOUT_MS = 3000;

export class Daemon {
  readonly log: Logger;
  readonly engine: MuxEngine;
  readonly devices: DeviceTable;
  readonly tunnels: TunnelManager;
  autoTunnels?: AutoTunnels;
  private sims?: SimSupervisor;
  preflight?: Preflight;
  private usb?: UsbDiscovery;
  private apis?: TunnelApis;
  private wifi?: WifiDevices;
  private remote!: DaemonRemote;
  private simDir?: string;
  private stopped = false;
  private removeKeylogSink?: () => void;

  private constructor(
    readonly options: DaemonOptions,
    readonly store: PairRecordStore,
    readonly server: UsbmuxServer,
    engine: MuxEngine,
    devices: DeviceTable,
    tunnels: TunnelManager,
    log: Logger,
    private readonly runDir: string,
  ) {
    this.engine = engine;
    this.devices = devices;
    this.tunnels = tunnels;
    this.log = log;
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const log = options.log ?? new Logger();
    const store = await PairRecordStore.open({ dir: options.configDir, uid: options.uid, gid: options.gid });
    const engine = new MuxEngine({
      connectTimeoutMs: options.connectTimeoutMs,
      window: options.window,
      zeroWindowTimeoutMs: options.zeroWindowTimeoutMs,
    });
    const devices = new DeviceTable(engine);
    engine.on('log', (l) => log.log(l.level === 'warning' ? 'warning' : l.level, l.text, { handle: l.handle }));
    engine.on('rejected', (r) => log.notice(`ignoring a device: ${r.reason}`, { handle: r.handle }));
    engine.on('detached', (d) => log.info(`device link ${d.handle} gone: ${d.reason}`, { code: d.code }));
    devices.on('attached', (d) => log.notice(`device ${d.deviceId} attached: ${d.serialNumber}`));
    devices.on('detached', (d) => log.notice(`device ${d.deviceId} detached: ${d.serialNumber}`));
    // Where in-process lockdown clients (preflight, tunnel starts) make their sockets.
    const runDir = mkdtempSync(join(tmpdir(), 'tsmuxd-run-'));
    // Under -U the daemon removes it after its drop, as that user.
    if (options.uid !== undefined && process.getuid?.() === 0) chownSync(runDir, options.uid, options.gid ?? options.uid);
    const interfaces = options.tun === 'auto' ? new KernelInterfaces(engine, log, 'auto', options.tunPrefix) : undefined;
    const tunnels = new TunnelManager({
      engine,
      devices,
      store,
      log,
      socketDir: runDir,
      defaultSendMss: options.tunnelSendMss,
      interfaces,
    });
    const remote: DaemonRemote = new DaemonRemote({ engine, devices, log, settings: options.remote, server: () => server });
    const server: UsbmuxServer = new UsbmuxServer({
      remotes: remote.hooks,
      address: options.address,
      engine,
      devices,
      store,
      log,
      tunnels,
      maxUnreadNotificationBytes: options.maxUnreadNotificationBytes,
    });
    const daemon = new Daemon(options, store, server, engine, devices, tunnels, log, runDir);
    daemon.remote = remote;
    // The TLS sessions the daemon runs (preflight, tunnel starts) decrypt in its captures.
    daemon.removeKeylogSink = addTlsKeylogSink((line) => engine.captures.secret(line));
    if (options.capture) daemon.captureFromStart(options.capture);
    // Started from preflight's "paired": without a preflight nothing starts them.
    if (options.tunnels === 'auto' && options.preflight !== false) daemon.autoTunnels = new AutoTunnels({ tunnels, devices, log });
    if (options.preflight !== false) {
      daemon.preflight = new Preflight({
        engine,
        devices,
        store,
        log,
        socketDir: runDir,
        retryMs: options.preflightRetryMs,
        onPaired: (d) => daemon.autoTunnels?.paired(d),
      });
    }
    try {
      await server.listen();
      for (const path of options.cables ?? []) {
        engine.listenCable(path);
        log.notice(`accepting virtual-cable devices on ${path}`);
      }
      if (options.sims) await daemon.startSims(options.sims);
      if (options.usb && options.usb !== 'off') {
        const { listed } = await daemon.startUsb(options.usb);
        // The tunnel APIs and Wi-Fi once the phones plugged in at start are
        // listed: their preflights have the JS thread to themselves meanwhile
        // (usb-start.ts). startOptional() checks `stopped` after each await.
        void listed.then(() => daemon.startOptional()).catch((err: unknown) => {
          log.error(`the tunnel APIs or Wi-Fi did not start: ${(err as Error).message}`);
        });
      } else {
        await daemon.startOptional();
      }
      await remote.start();
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    return daemon;
  }

  /** `--capture FILE`: before any phone is opened, so the file holds every packet. */
  private captureFromStart(path: string): void {
    const fd = openSync(path, 'w', 0o600);
    try {
      const { id, ended } = this.engine.captures.start(fd, {});
      this.log.notice(`capturing to ${path} (capture ${id})`);
      ended.then((end) => {
        const line = `capture to ${path} ended: ${end.reason}; ${end.packets} packets, ${end.bytes} bytes, ${end.dropped} dropped`;
        if (end.code) this.log.error(line);
        else this.log.notice(line);
      }, () => undefined);
    } finally {
      closeSync(fd);  // the data plane has its own copy
    }
  }

  /**
   * Never throws: no USB is one warning, and the daemon goes on without it.
   * `listed` resolves when the phones plugged in at start are listed.
   */
  private async startUsb(mode: 'hotplug' | 'manual'): Promise<{ listed: Promise<void> }> {
    const { startUsbDiscovery } = await import('./usb-start.js');
    const started = await startUsbDiscovery({ engine: this.engine, devices: this.devices, log: this.log, mode, stopped: () => this.stopped });
    this.usb = started.discovery;
    return { listed: started.listed };  // in an object: an awaited promise would be waited for
  }

  /** The tunnel APIs and Wi-Fi, as the options have them; nothing once the daemon is stopping. */
  private async startOptional(): Promise<void> {
    if (this.stopped) return;
    if (this.options.tunneldApi || this.options.goIosApi) await this.startTunnelApis();
    if (this.stopped) return;
    if (this.options.wifi === 'auto') await this.startWifi();
  }

  /** After the socket: these APIs load their modules (and ws at the first /connect) only when on. */
  private async startTunnelApis(): Promise<void> {
    const { TunnelApis } = await import('../tunnel-api/tunnel-apis.js');
    const { tunnels, devices, log } = this;
    const apis = await TunnelApis.start({ tunnels, devices, log, tunneldApi: this.options.tunneldApi, goIosApi: this.options.goIosApi });
    // A stop() that ran meanwhile has closed what it found, which was not these.
    if (this.stopped) await apis.close();
    else this.apis = apis;
  }

  /** After the socket: mDNS and the heartbeats load only when on. */
  private async startWifi(): Promise<void> {
    const { WifiDevices } = await import('../wifi/wifi-devices.js');
    if (this.stopped) return;
    this.wifi = new WifiDevices({ devices: this.devices, store: this.store, log: this.log, graceMs: this.options.wifiGraceMs });
    this.wifi.start();
  }

  /** Where --remote-listen listens (port 0 picks one). */
  remoteListenPort(): number | undefined {
    return this.remote.listenPort();
  }

  /** Where the tunneld and go-ios APIs listen (absent: off, or their port was taken). */
  apiAddresses(): TunnelApiAddresses {
    return { ...this.apis?.addresses };
  }

  /** Looks for USB phones now (SIGUSR2). */
  discover(): void {
    this.usb?.scan();
  }

  /** USB devices handed to the engine, by `bus-address` (for tests and diagnostics). */
  usbHandles(): Map<string, number> {
    return this.usb?.handles() ?? new Map();
  }

  private async startSims(count: number): Promise<void> {
    this.simDir = mkdtempSync(join(tmpdir(), 'tsmuxd-sim-'));
    const cable = join(this.simDir, 'cable');
    this.engine.listenCable(cable);
    const stateRoot = this.options.simStateDir ?? this.simDir;
    // With -U the sims run as that user from the start, so one restarted
    // after our own drop finds its cable and its identity still its own.
    const { uid, gid } = this.options;
    const user = uid !== undefined && process.getuid?.() === 0 ? { uid, gid: gid ?? uid } : undefined;
    if (user) {
      // Parents at the umask's mode, so the user can reach the 0700 leaf.
      mkdirSync(dirname(stateRoot), { recursive: true });
      mkdirSync(stateRoot, { recursive: true, mode: 0o700 });
      await chownTree(stateRoot, user.uid, user.gid);
      chownSync(this.simDir, user.uid, user.gid);
      chownSync(cable, user.uid, user.gid);
    }
    const { SimSupervisor } = await import('../supervisor/supervisor.js');
    this.sims = await SimSupervisor.start({
      cable,
      count,
      log: this.log,
      trust: this.options.simTrust,
      args: this.options.simArgs,
      stateDir: (index) => join(stateRoot, `sim-${index}`),
      user,
      stopTimeoutMs: this.options.simStopTimeoutMs,
    });
    this.log.notice(`${count} simulated phone(s) attached: ${this.sims.list().map((s) => s.udid).join(', ')}`);
  }

  /** Where each running simulated phone's services listen (device port -> TCP port or path). */
  simServices(): Array<Record<number, string | number>> {
    return this.sims?.readyList().map((s) => s.services) ?? [];
  }

  /** The simulated phones: index, UDID, process id (while running) and restarts. */
  simList(): Array<{ index: number; udid?: string; pid?: number; running: boolean; restarts: number }> {
    return this.sims?.list() ?? [];
  }

  /** Taps Trust / Don't Trust, or pulls / plugs the cable of simulated phone `index`. */
  simControl(index: number, command: SimCommand): void {
    if (!this.sims) throw new RangeError(`no simulated phone ${index}`);
    this.sims.command(index, command);
  }

  /** Stops accepting, resets every connection, removes the socket. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.server.close();
    await this.apis?.close();
    this.wifi?.close();
    await this.remote.close();
    this.usb?.close();
    this.autoTunnels?.close();
    this.tunnels.close();
    await this.engine.captures.stopAll('the daemon is stopping', CAPTURE_STOP_TIMEOUT_MS);
    this.removeKeylogSink?.();
    this.engine.close();
    await this.sims?.stop();
    for (const dir of [this.simDir, this.runDir]) {
      if (!dir) continue;
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch (err) {
        // Left behind in the temp dir; stopping goes on.
        this.log.warning(`cannot remove ${dir}: ${(err as Error).message}`);
      }
    }
  }
}
