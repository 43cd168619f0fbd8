// The daemon's remote usbmux (docs/remote.md): the instances it merges into
// its own socket, its --remote-listen listener, and DNS-SD. Each part loads
// its modules when first used: an AddInstance, a flag, or a found service.
import type { DeviceTable } from '../devices/device-table.js';
import type { RemoteTlsPem } from '../native/addon.js';
import type { MuxEngine } from '../native/mux-engine.js';
import type { RemoteDiscovery } from '../remote/dns-sd.js';
import type { RemoteInstances } from '../remote/remote-instances.js';
import type { RemoteListener } from '../remote/remote-listener.js';
import type { PairRecordPolicy } from '../server/access.js';
import type { RemoteHooks } from '../server/remote-commands.js';
import type { UsbmuxServer } from '../server/server.js';
import type { Logger } from '../util/log.js';

export interface RemoteSettings {
  /** --remote-listen: serve the usbmuxd protocol to other hosts here (port 0: any). */
  listen?: { host: string; port: number };
  /** This daemon's identity: the listener's, and an AddInstance's that names none. */
  tls?: RemoteTlsPem;
  /** The listener is plain TCP (--remote-insecure); never without asking. */
  insecure?: boolean;
  /** What remote clients may do with pair records (read-only when omitted). */
  pairRecords?: PairRecordPolicy;
  /** Announce the listener over DNS-SD (default true). */
  advertise?: boolean;
  /** Add instances found over DNS-SD: ours (TLS), or usbfluxd's plain ones too. */
  discover?: 'off' | 'tls' | 'all';
  /** How often a remote's link is pinged; a ping unanswered by the next one ends it (5 s). */
  keepaliveMs?: number;
}

export class DaemonRemote {
  private listener?: RemoteListener;
  private discovery?: RemoteDiscovery;
  private instances?: Promise<RemoteInstances>;
  private loaded?: RemoteInstances;
  /** What the usbmuxd server asks for remote instances (the server exists after us). */
  readonly hooks: RemoteHooks;

  constructor(
    private readonly o: { engine: MuxEngine; devices: DeviceTable; log: Logger; settings?: RemoteSettings; server: () => UsbmuxServer },
  ) {
    this.hooks = { identity: o.settings?.tls, loaded: () => this.loaded, instances: () => this.load() };
  }

  /** src/remote's instances, loaded at their first use. */
  private load(): Promise<RemoteInstances> {
    this.instances ??= import('../remote/remote-instances.js').then(({ RemoteInstances }) => {
      this.loaded = new RemoteInstances({
        engine: this.o.engine,
        devices: this.o.devices,
        log: this.o.log,
        keepaliveMs: this.o.settings?.keepaliveMs,
        connectTimeoutMs: this.o.engine.connectTimeoutMs,
      });
      return this.loaded;
    });
    return this.instances;
  }

  /** After the socket: the remote listener and DNS-SD, each only when asked for (nothing loads otherwise). */
  async start(): Promise<void> {
    const settings = this.o.settings;
    if (!settings) return;
    if (settings.listen) {
      if (!settings.tls && !settings.insecure) throw new Error('--remote-listen needs --remote-cert, --remote-key and --remote-ca, or --remote-insecure');
      const { RemoteListener } = await import('../remote/remote-listener.js');
      const pairRecords = settings.pairRecords ?? 'read-only';
      this.listener = new RemoteListener({
        engine: this.o.engine,
        log: this.o.log,
        host: settings.listen.host,
        port: settings.listen.port,
        tls: settings.insecure ? null : settings.tls!,
        serve: (socket, label) => this.o.server().serveRemote(socket, { label, pairRecords }),
      });
      await this.listener.listen();
    }
    const advertise = settings.listen && settings.advertise !== false;
    const discover = settings.discover ?? 'off';
    if (!advertise && discover === 'off') return;
    const { RemoteDiscovery } = await import('../remote/dns-sd.js');
    this.discovery = new RemoteDiscovery({
      log: this.o.log,
      advertise: advertise ? { port: this.listener!.boundPort, tls: !settings.insecure, host: settings.listen!.host } : undefined,
      discover,
      found: async (host, port, tls) => {
        const instances = await this.load();
        // Ours need this daemon's identity; usbfluxd's are plain.
        if (tls && !settings.tls) return;
        instances.add(host, port, tls ? settings.tls! : null, 'dns-sd');
      },
    });
    this.discovery.start();
  }

  /** Where --remote-listen listens (port 0 picks one). */
  listenPort(): number | undefined {
    return this.listener?.boundPort;
  }

  async close(): Promise<void> {
    this.discovery?.close();
    await this.listener?.close();
    this.loaded?.close();
  }
}
