// Starting USB discovery without holding up the phones already plugged in.
// The npm usb package is fourteen files and a native addon: under the USB
// lab's emulated CPU, loading it took seconds between the socket coming up
// and the phone being opened. So the phones present at start are read from
// sysfs (what libusb's Linux backend reads too) and opened at once; the
// package, for hotplug and later scans, is loaded when those phones are
// listed (or gone, or after LISTED_WAIT_MS), and then scans again: a phone
// plugged in meanwhile is found by that scan. The daemon holds back its other
// optional starts (the tunnel APIs, Wi-Fi) until the same moment: in the lab
// their modules loaded in the middle of the first preflight (docs/architecture.md,
// "Start-up").
import type { DeviceTable } from '../devices/device-table.js';
import type { MuxEngine } from '../native/mux-engine.js';
import type { UsbDiscovery } from '../usb/discovery.js';
import type { Logger } from '../util/log.js';

/** The most the usb package waits for the phones found at start to be listed. */
export const LISTED_WAIT_MS = 10_000;

const WITHOUT_USB = 'serving virtual-cable and simulated devices only';

export interface UsbStart {
  /** Undefined (after one warning) where libusb cannot start. */
  discovery?: UsbDiscovery;
  /** Resolves when the phones plugged in at start are listed (or gone, or after LISTED_WAIT_MS); never rejects. */
  listed: Promise<void>;
}

/** Never throws. */
export async function startUsbDiscovery(
  o: { engine: MuxEngine; devices: DeviceTable; log: Logger; mode: 'hotplug' | 'manual'; stopped: () => boolean },
): Promise<UsbStart> {
  try {
    o.engine.startUsb();
  } catch (err) {
    o.log.warning(`USB is unavailable (${(err as Error).message}); ${WITHOUT_USB}`);
    return { listed: Promise.resolve() };
  }
  const { loadUsbBackend, UsbDiscovery } = await import('../usb/discovery.js');
  const { readSysfsUsbDevices } = await import('../usb/sysfs-devices.js');
  const discovery = new UsbDiscovery(o.engine, { getDeviceList: () => readSysfsUsbDevices(), on: () => {}, removeListener: () => {} }, o.log);
  discovery.scan();
  const atStart = [...discovery.handles().values()];

  const listed = whenListed(o.engine, o.devices, atStart, LISTED_WAIT_MS);
  void listed.then(async () => {
    if (o.stopped()) return;
    const loaded = await loadUsbBackend();
    if (o.stopped()) return;
    if ('error' in loaded) {
      o.log.warning(`USB discovery is unavailable (${loaded.error}); ${atStart.length ? 'phones plugged in later are not seen' : WITHOUT_USB}`);
      return;
    }
    discovery.replaceBackend(loaded.backend);
    discovery.start({ hotplug: o.mode === 'hotplug' });
    o.log.info(o.mode === 'hotplug' ? 'USB discovery: hotplug' : 'USB discovery: at start and on SIGUSR2 (-n)');
  }).catch((err: unknown) => o.log.warning(`USB hotplug did not start: ${(err as Error).message}`));
  return { discovery, listed };
}

/** Resolves when every handle is listed or gone, or after `ms`. */
function whenListed(engine: MuxEngine, devices: DeviceTable, handles: number[], ms: number): Promise<void> {
  const pending = new Set(handles);
  if (pending.size === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const settle = (handle: number) => {
      pending.delete(handle);
      if (pending.size === 0) done();
    };
    const onListed = (d: { handle: number }) => settle(d.handle);
    const onGone = (d: { handle: number }) => settle(d.handle);
    const timer = setTimeout(() => done(), ms);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      devices.off('attached', onListed);
      engine.off('detached', onGone);
      engine.off('rejected', onGone);
      resolve();
    };
    devices.on('attached', onListed);
    engine.on('detached', onGone);
    engine.on('rejected', onGone);
  });
}
