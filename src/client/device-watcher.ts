// A live view of a daemon's devices, kept by one Listen connection: who is
// attached now, in attach order, and a promise for the next one. If the
// daemon goes away the view empties and Listen is retried until it is back,
// so a long-running tool (tsmuxd forward) survives a daemon restart.
import { EventEmitter } from 'node:events';

import type { Listener, UsbmuxClient, UsbmuxDevice } from './usbmux-client.js';

export interface DeviceWatcherEvents {
  attached: [UsbmuxDevice];
  detached: [UsbmuxDevice];
  /** Listen failed or the daemon closed it; retrying in `retryMs`. */
  lost: [Error];
  /** Listen works again after a loss. */
  restored: [];
}

export class DeviceWatcher extends EventEmitter<DeviceWatcherEvents> {
  private readonly devices = new Map<number, UsbmuxDevice>();
  private listener: Listener | null = null;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly client: UsbmuxClient,
    private readonly retryMs = 1000,
  ) {
    super();
  }

  /** Starts listening; rejects if the daemon cannot be reached now. */
  async start(): Promise<void> {
    this.listener = await this.client.listen();
    void this.consume(this.listener);
  }

  /** The device with this UDID, or without one the first attached. */
  pick(udid?: string): UsbmuxDevice | undefined {
    for (const d of this.devices.values()) if (udid === undefined || d.serialNumber === udid) return d;
    return undefined;
  }

  /** Resolves with `pick(udid)` once there is one. */
  async wait(udid?: string, signal?: AbortSignal): Promise<UsbmuxDevice> {
    for (;;) {
      const d = this.pick(udid);
      if (d) return d;
      if (this.closed) throw new Error('the device watcher is closed');
      if (signal?.aborted) throw signal.reason as Error;
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.push(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  list(): UsbmuxDevice[] {
    return [...this.devices.values()];
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.listener?.close();
    this.wakeAll();
  }

  private wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async consume(listener: Listener): Promise<void> {
    try {
      for await (const ev of listener) {
        if (ev.type === 'attached') {
          this.devices.set(ev.device.deviceId, ev.device);
          this.emit('attached', ev.device);
          this.wakeAll();
        } else if (ev.type === 'detached') {
          const gone = this.devices.get(ev.deviceId);
          this.devices.delete(ev.deviceId);
          if (gone) this.emit('detached', gone);
        }
      }
      if (this.closed) return;
      this.lose(new Error('the daemon closed the Listen connection'));
    } catch (err) {
      if (this.closed) return;
      this.lose(err as Error);
    }
  }

  private lose(err: Error): void {
    for (const d of this.devices.values()) this.emit('detached', d);
    this.devices.clear();
    this.emit('lost', err);
    this.retry();
  }

  private retry(): void {
    this.retryTimer = setTimeout(() => {
      if (this.closed) return;
      this.client.listen().then(
        (listener) => {
          if (this.closed) return listener.close();
          this.listener = listener;
          this.emit('restored');
          void this.consume(listener);
        },
        () => this.retry(),
      );
    }, this.retryMs);
  }
}
