// Tunnels that come up by themselves (`--tunnels auto`, docs/tunnel.md):
// once preflight has a phone paired and listed, its CoreDeviceProxy tunnel
// is started; a tunnel that fails to start, or that ends while its phone is
// still here, is started again after a backoff that doubles up to a minute,
// with a log line for each attempt. A phone that has no CoreDeviceProxy
// (below iOS 17.4) is remembered by its engine handle, which a replug
// replaces, so it is asked again only after a replug. A tunnel stopped on
// request (TunnelStop, the APIs) stays down until its phone is replugged or
// a start is asked for.
import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { Logger } from '../util/log.js';
import { TunnelError } from './errors.js';
import type { ManagedTunnel, TunnelDown, TunnelManager } from './tunnel-manager.js';

export type TunnelsSetting = 'auto' | 'off';

/** The first retry's delay; each failure doubles it, up to MAX_RETRY_MS. */
export const FIRST_RETRY_MS = 1000;
export const MAX_RETRY_MS = 60_000;
/** A tunnel that stayed up this long failed for a new reason: its next retry starts from FIRST_RETRY_MS. */
export const STABLE_TUNNEL_MS = 60_000;

export interface AutoTunnelsOptions {
  tunnels: TunnelManager;
  devices: DeviceTable;
  log: Logger;
  firstRetryMs?: number;
  maxRetryMs?: number;
}

interface Retry {
  failures: number;
  timer?: NodeJS.Timeout;
}

export class AutoTunnels {
  /** Handles of phones without CoreDeviceProxy, until they leave. */
  private readonly refused = new Set<number>();
  /** Handles whose tunnel was stopped on request. */
  private readonly stoppedByRequest = new Set<number>();
  private readonly retries = new Map<number, Retry>();
  private readonly onDown = (down: TunnelDown) => this.tunnelDown(down);
  // A tunnel started by hand after one was stopped by hand is kept up again.
  private readonly onUp = (t: ManagedTunnel) => this.stoppedByRequest.delete(t.handle);
  private readonly onDetached = (d: DeviceRecord) => this.forget(d.handle);
  private closed = false;

  constructor(private readonly o: AutoTunnelsOptions) {
    o.tunnels.on('down', this.onDown);
    o.tunnels.on('up', this.onUp);
    o.devices.on('detached', this.onDetached);
  }

  /** Preflight found the phone paired: its tunnel, unless it has none. */
  paired(d: DeviceRecord): void {
    if (this.closed || this.refused.has(d.handle) || this.stoppedByRequest.has(d.handle)) return;
    this.attempt(d);
  }

  /** What is known about a phone (for `tunnel ls` and the APIs). */
  status(d: DeviceRecord): 'refused' | 'stopped' | 'retrying' | undefined {
    if (this.refused.has(d.handle)) return 'refused';
    if (this.stoppedByRequest.has(d.handle)) return 'stopped';
    return this.retries.get(d.handle)?.timer ? 'retrying' : undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.o.tunnels.off('down', this.onDown);
    this.o.tunnels.off('up', this.onUp);
    this.o.devices.off('detached', this.onDetached);
    for (const r of this.retries.values()) clearTimeout(r.timer);
    this.retries.clear();
  }

  private attempt(d: DeviceRecord): void {
    const retry = this.retries.get(d.handle);
    if (retry?.timer) return;  // one is scheduled already
    this.o.tunnels.start(d).then(
      () => undefined,  // 'up' is logged by the manager; failures reset once it has stayed up
      (err: unknown) => this.failed(d, err),
    );
  }

  private failed(d: DeviceRecord, err: unknown): void {
    if (this.closed || !this.o.devices.has(d)) return;
    if (err instanceof TunnelError && err.code === 'ENOCOREDEVICEPROXY') {
      this.refused.add(d.handle);
      this.o.log.notice(`${d.serialNumber}: no automatic tunnel: ${err.message}; not asked again until it is replugged`);
      return;
    }
    this.schedule(d, `it did not start: ${(err as Error)?.message ?? String(err)}`);
  }

  private tunnelDown(down: TunnelDown): void {
    if (this.closed) return;
    const d = this.o.devices.byId(down.deviceId);
    if (!d || d.handle !== down.handle) return;  // the phone left: nothing to rebuild
    if (down.requested) {
      this.stoppedByRequest.add(d.handle);
      return;
    }
    const retry = this.retries.get(d.handle);
    if (retry && Date.now() - down.startedAt >= STABLE_TUNNEL_MS) retry.failures = 0;
    this.schedule(d, `it closed: ${down.why}`);
  }

  private schedule(d: DeviceRecord, why: string): void {
    const retry = this.retries.get(d.handle) ?? { failures: 0 };
    this.retries.set(d.handle, retry);
    if (retry.timer) return;
    retry.failures += 1;
    const first = this.o.firstRetryMs ?? FIRST_RETRY_MS;
    const delay = Math.min(this.o.maxRetryMs ?? MAX_RETRY_MS, first * 2 ** Math.min(retry.failures - 1, 16));
    this.o.log.warning(`tunnel to ${d.serialNumber}: ${why}; attempt ${retry.failures + 1} in ${(delay / 1000).toFixed(1)} s`);
    retry.timer = setTimeout(() => {
      retry.timer = undefined;
      if (this.closed || !this.o.devices.has(d) || this.stoppedByRequest.has(d.handle)) return;
      this.o.log.info(`tunnel to ${d.serialNumber}: attempt ${retry.failures + 1}`);
      this.attempt(d);
    }, delay);
    retry.timer.unref();
  }

  private forget(handle: number): void {
    clearTimeout(this.retries.get(handle)?.timer);
    this.retries.delete(handle);
    this.refused.delete(handle);
    this.stoppedByRequest.delete(handle);
  }
}
