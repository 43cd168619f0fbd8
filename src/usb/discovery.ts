// USB discovery: which phones are plugged in, found with the npm `usb`
// package and opened by the data plane through its own libusb handle. (The
// daemon's first scan reads sysfs instead and hands over to the package
// later: sysfs-devices.ts, src/daemon/usb-start.ts.)
//
// Why usb@2 (node-usb, C++ over libusb) and not usb@3 (a Rust/nusb rewrite
// with only the WebUSB API), checked against both packages' code:
// - usb@2 gives `busNumber` and `deviceAddress` as numbers, and the device
//   and every configuration descriptor from libusb's cache (sysfs on Linux),
//   so an Apple phone is matched without opening anything. usb@3's `bus` is
//   a string (its docs show port paths such as "2-3.4") and its detach event
//   carries only an opaque handle string.
// - usb@2's hotplug is libusb's (udev on Linux) with a polling fallback
//   built in (`pollHotplug`), and the same Device object comes back on
//   detach. usb@3 starts hotplug in a promise whose failure it rethrows from
//   a timer: on a machine without /sys/bus/usb, merely listening for
//   'connect' kills the process with an uncaught error (tried here). A
//   daemon must keep serving cable and simulated devices instead.
// Discovery only reads descriptors; the data plane opens, configures and
// claims (native/usb/libusb_open.cc) and the device then arrives exactly like
// a cable device (MuxEngine `attached`).
import type { Device } from 'usb';

import type { MuxEngine } from '../native/mux-engine.js';
import type { Logger } from '../util/log.js';
import { checkDevice } from '../native/config-select.js';
import { describeUsbDevice, isAppleCandidate, openRequest, usbDeviceKey, type UsbDeviceLike } from './usb-descriptor.js';

/** What of the `usb` package discovery uses. */
export interface UsbBackend {
  getDeviceList(): UsbDeviceLike[];
  on(event: 'attach' | 'detach', listener: (d: UsbDeviceLike) => void): void;
  removeListener(event: 'attach' | 'detach', listener: (d: UsbDeviceLike) => void): void;
}

export interface UsbDiscoveryOptions {
  /** Follow attach/detach events; without it devices are found on scan() only (tsmuxd -n, SIGUSR2). */
  hotplug: boolean;
}

/** Loads the `usb` package; null with the reason when it cannot be used. */
export async function loadUsbBackend(): Promise<{ backend: UsbBackend } | { error: string }> {
  try {
    const mod = await import('usb');
    const usb = mod.usb as typeof mod.usb & { INIT_ERROR?: number };
    if (usb.INIT_ERROR) return { error: `the usb package could not initialize libusb (error ${usb.INIT_ERROR})` };
    const backend: UsbBackend = {
      getDeviceList: () => usb.getDeviceList(),
      on: (event, listener) => usb.on(event, listener as (d: Device) => void),
      removeListener: (event, listener) => usb.removeListener(event, listener as (d: Device) => void),
    };
    return { backend };
  } catch (err) {
    return { error: `the usb package did not load: ${(err as Error).message}` };
  }
}

interface Known {
  handle?: number;
  opened: boolean;
}

export class UsbDiscovery {
  private readonly known = new Map<string, Known>();
  private readonly keyByHandle = new Map<number, string>();
  private readonly onAttach = (d: UsbDeviceLike) => this.consider(d);
  private readonly onDetach = (d: UsbDeviceLike) => this.gone(d);
  private listening = false;
  private closed = false;

  constructor(
    private readonly engine: MuxEngine,
    private backend: UsbBackend,
    private readonly log: Logger,
  ) {
    engine.on('attached', (d) => {
      if (this.keyByHandle.has(d.handle)) {
        const k = this.known.get(this.keyByHandle.get(d.handle)!);
        if (k) k.opened = true;
      }
    });
    engine.on('rejected', ({ handle }) => this.forget(handle));
    engine.on('detached', ({ handle, code, reason }) => {
      const key = this.keyByHandle.get(handle);
      if (key === undefined) return;
      const k = this.known.get(key);
      if (k && !k.opened && code !== 'ERR_UNPLUGGED') this.log.warning(`cannot use the USB device at ${key}: ${reason}`, { code });
      this.forget(handle);
    });
  }

  /** Enumerates now, then (with hotplug) follows attach and detach. */
  start(options: UsbDiscoveryOptions): void {
    if (this.closed) return;
    if (options.hotplug && !this.listening) {
      this.listening = true;
      this.backend.on('attach', this.onAttach);
      this.backend.on('detach', this.onDetach);
    }
    this.scan();
  }

  /**
   * Hands over to another backend: the daemon scans sysfs first and moves to
   * the usb package for hotplug. Devices already known stay known (the key
   * is bus-address in both), so the new backend's first scan skips them.
   */
  replaceBackend(backend: UsbBackend): void {
    if (this.listening) {
      this.backend.removeListener('attach', this.onAttach);
      this.backend.removeListener('detach', this.onDetach);
      this.listening = false;
    }
    this.backend = backend;
  }

  /** Looks at every attached device once (start, tsmuxd -n on SIGUSR2). */
  scan(): void {
    if (this.closed) return;
    let list: UsbDeviceLike[];
    try {
      list = this.backend.getDeviceList();
    } catch (err) {
      this.log.warning(`cannot list USB devices: ${(err as Error).message}`);
      return;
    }
    for (const d of list) this.consider(d);
  }

  /** Devices discovery has handed to the engine, by `bus-address`. */
  handles(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, k] of this.known) if (k.handle !== undefined) out.set(key, k.handle);
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.listening) {
      // The last listener gone stops node-usb's hotplug thread or poll timer.
      this.backend.removeListener('attach', this.onAttach);
      this.backend.removeListener('detach', this.onDetach);
      this.listening = false;
    }
  }

  private consider(d: UsbDeviceLike): void {
    if (this.closed) return;
    const key = usbDeviceKey(d);
    if (this.known.has(key)) return;
    // Anything that is not an Apple usbmux product is decided on its device
    // descriptor alone: nothing more is read from it, nothing is opened.
    if (!isAppleCandidate(d)) return;
    const descriptor = describeUsbDevice(d);
    const check = checkDevice(descriptor);
    const ids = `05ac:${descriptor.productId.toString(16).padStart(4, '0')}`;
    if (!check.ok) {
      this.known.set(key, { opened: false });
      this.log.notice(`ignoring the USB device ${ids} at ${key}: ${check.reason}`);
      return;
    }
    let handle: number;
    try {
      handle = this.engine.openUsb(openRequest(d, check.selection));
    } catch (err) {
      this.known.set(key, { opened: false });
      this.log.warning(`cannot open the USB device ${ids} at ${key}: ${(err as Error).message}`);
      return;
    }
    this.known.set(key, { handle, opened: false });
    this.keyByHandle.set(handle, key);
    this.log.info(`opening the USB device ${ids} at ${key} (configuration ${check.selection.configuration}, interface ${check.selection.interfaceNumber})`, { handle });
  }

  private gone(d: UsbDeviceLike): void {
    const key = usbDeviceKey(d);
    const k = this.known.get(key);
    this.known.delete(key);
    if (k?.handle === undefined) return;
    // The engine usually notices first (its transfers fail); this covers a
    // device with nothing in flight. A handle already gone is a no-op.
    this.engine.closeDevice(k.handle, true);
  }

  private forget(handle: number): void {
    const key = this.keyByHandle.get(handle);
    if (key === undefined) return;
    this.keyByHandle.delete(handle);
    const k = this.known.get(key);
    // Forgotten, so a rescan (SIGUSR2) or a replug may try it again.
    if (k?.handle === handle) this.known.delete(key);
  }
}
