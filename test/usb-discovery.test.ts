// USB discovery (src/usb/discovery.ts) over a real MuxEngine. The devices
// come from a stand-in for the npm `usb` package (this machine has no USB),
// in that package's shape; everything from openUsb on is the real data
// plane, which here has no libusb started, so every open comes back as a
// `detached` with the reason, as a failed open would on a real machine.
import { EventEmitter, once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import { MuxEngine } from '../src/native/mux-engine.js';
import { Logger } from '../src/util/log.js';
import { NativeError } from '../src/native/addon.js';
import { UsbDiscovery, type UsbBackend } from '../src/usb/discovery.js';
import type { UsbDeviceLike } from '../src/usb/usb-descriptor.js';
import { tempDir } from './helpers/harness.js';
import { alt, config, deviceDescriptor, endpoint, fixture, iphone } from './helpers/usb-fixtures.js';

class FixtureBackend implements UsbBackend {
  devices: UsbDeviceLike[] = [];
  failList = false;
  readonly events = new EventEmitter();
  getDeviceList(): UsbDeviceLike[] {
    if (this.failList) throw new Error('LIBUSB_ERROR_NO_MEM');
    return this.devices;
  }
  on(event: 'attach' | 'detach', listener: (d: UsbDeviceLike) => void): void {
    this.events.on(event, listener);
  }
  removeListener(event: 'attach' | 'detach', listener: (d: UsbDeviceLike) => void): void {
    this.events.removeListener(event, listener);
  }
}

function setup(t: { teardown(fn: () => void): void; fail(message: string): void }) {
  const dir = tempDir(t);
  const logFile = join(dir, 'log');
  const log = new Logger({ verbosity: 7, file: logFile });
  const engine = new MuxEngine();
  t.teardown(() => engine.close());
  const backend = new FixtureBackend();
  const discovery = new UsbDiscovery(engine, backend, log);
  t.teardown(() => discovery.close());
  const detached: Array<{ handle: number; code: string; reason: string }> = [];
  engine.on('detached', (d) => detached.push(d));
  return { engine, backend, discovery, logText: () => readFileSync(logFile, 'utf8'), detached };
}

const nextDetached = (engine: MuxEngine) => once(engine, 'detached') as Promise<[{ handle: number; code: string; reason: string }]>;

t.test('only Apple usbmux devices reach the engine, and nothing else of a stranger is read', async (t) => {
  const { engine, backend, discovery, logText } = setup(t);
  const stranger = (vid: number, pid: number, address: number) =>
    fixture(deviceDescriptor(vid, pid, 1), [config(1, [[alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04), endpoint(0x85)])]])], {
      address,
      onRead: () => t.fail(`configuration descriptors of ${vid.toString(16)}:${pid.toString(16)} were read`),
    });
  const noMux = fixture(deviceDescriptor(0x05ac, 0x12a8, 1), [config(1, [[alt(0, 0xff, 0xfd, 0x01, [endpoint(0x04), endpoint(0x85)])]])], { address: 4 });
  backend.devices = [stranger(0x1234, 0x12a8, 2), stranger(0x05ac, 0x8286, 3), noMux, iphone({ bus: 1, address: 5 })];

  const gone = nextDetached(engine);
  discovery.start({ hotplug: true });
  t.same([...discovery.handles().keys()], ['1-5'], 'only the iPhone was handed to the engine');
  const [ev] = await gone;
  t.equal(ev.code, 'ERR_USB_UNAVAILABLE', 'the engine answers (no libusb started in this test)');
  t.match(logText(), /\[warning\] cannot use the USB device at 1-5: libusb is not started/, 'a failed open is one warning');
  t.match(logText(), /ignoring the USB device 05ac:12a8 at 1-4: no usbmux interface/, 'an Apple device without the mux interface is ignored');
  t.equal(discovery.handles().size, 0, 'a device that could not be opened is forgotten, so a rescan may retry it');
});

t.test('hotplug attach and detach; a rescan retries; listing failures are survived', async (t) => {
  const { engine, backend, discovery, logText, detached } = setup(t);
  discovery.start({ hotplug: true });
  t.equal(backend.events.listenerCount('attach'), 1, 'listening for attach');

  const phone = iphone({ bus: 2, address: 9 });
  let gone = nextDetached(engine);
  backend.events.emit('attach', phone);
  t.ok(discovery.handles().has('2-9'), 'an attached phone is opened');
  await gone;
  backend.events.emit('attach', phone);
  t.ok(discovery.handles().has('2-9'), 'after its failed open, the same device may be tried again');
  const handle = discovery.handles().get('2-9')!;
  backend.events.emit('detach', phone);
  t.notOk(discovery.handles().has('2-9'), 'a detached phone is forgotten at once');
  await t.resolves(nextDetached(engine), 'the engine still reports the handle gone');
  t.ok(detached.some((d) => d.handle === handle), 'for the handle discovery gave it');

  backend.failList = true;
  t.doesNotThrow(() => discovery.scan(), 'a failing device list does not throw');
  t.match(logText(), /cannot list USB devices: LIBUSB_ERROR_NO_MEM/);
  backend.failList = false;

  backend.devices = [iphone({ bus: 3, address: 2 })];
  gone = nextDetached(engine);
  discovery.scan();
  t.ok(discovery.handles().has('3-2'), 'scan() (SIGUSR2, tsmuxd -n) finds what is plugged in');
  await gone;

  discovery.close();
  t.equal(backend.events.listenerCount('attach') + backend.events.listenerCount('detach'), 0, 'close() stops listening');
  backend.events.emit('attach', iphone({ bus: 3, address: 3 }));
  t.equal(discovery.handles().size, 0, 'nothing is opened after close()');
});

t.test('without hotplug (tsmuxd -n) only scans find devices', async (t) => {
  const { engine, backend, discovery } = setup(t);
  backend.devices = [iphone({ bus: 1, address: 7 })];
  const gone = nextDetached(engine);
  discovery.start({ hotplug: false });
  t.equal(backend.events.listenerCount('attach'), 0, 'no attach listener');
  t.ok(discovery.handles().has('1-7'), 'the start scan still enumerates');
  await gone;
});

t.test('the data plane opens Apple usbmux devices only, with sane endpoints', async (t) => {
  const engine = new MuxEngine();
  t.teardown(() => engine.close());
  const good = { busNumber: 1, deviceAddress: 2, vendorId: 0x05ac, productId: 0x12a8, configuration: 4, interfaceNumber: 1, endpointIn: 0x85, endpointOut: 0x04, maxPacketSize: 512 };
  const bad: Array<[string, Partial<typeof good>]> = [
    ['another vendor', { vendorId: 0x1234 }],
    ['an Apple product that is no phone', { productId: 0x8286 }],
    ['an OUT address as IN', { endpointIn: 0x05 }],
    ['an IN address as OUT', { endpointOut: 0x84 }],
    ['endpoint 0', { endpointOut: 0x00 }],
    ['bus 0', { busNumber: 0 }],
    ['address 128', { deviceAddress: 128 }],
    ['configuration 0', { configuration: 0 }],
    ['wMaxPacketSize 2048', { maxPacketSize: 2048 }],
    ['a non-integer', { interfaceNumber: 1.5 }],
  ];
  for (const [what, change] of bad) {
    t.throws(() => engine.openUsb({ ...good, ...change }), { name: 'NativeError', code: 'ERR_INVALID_ARGUMENT' }, `${what}: refused`);
  }
  const gone = nextDetached(engine);
  const handle = engine.openUsb(good);
  const [ev] = await gone;
  t.equal(ev.handle, handle, 'a well-formed request is taken (and answered, here with no libusb)');
});

t.test('libusb in the data plane where there is no USB', async (t) => {
  const engine = new MuxEngine();
  t.teardown(() => engine.close());
  let err: unknown;
  try {
    engine.startUsb();
  } catch (e) {
    err = e;
  }
  if (!err) {
    t.pass('this machine has USB: libusb started (the no-USB path is not exercised here)');
    engine.startUsb();
    t.pass('a second startUsb is a no-op');
    return;
  }
  t.ok(err instanceof NativeError, 'a NativeError');
  t.equal((err as NativeError).code, 'ERR_USB_UNAVAILABLE');
  t.match((err as NativeError).message, /libusb_init failed: LIBUSB_ERROR/);
  t.throws(() => engine.startUsb(), { code: 'ERR_USB_UNAVAILABLE' }, 'and again on a second try, without crashing');
});

t.test('the daemon hands the first scan (sysfs) over to the usb package: known devices stay known', async (t) => {
  const { backend: first, discovery } = setup(t);
  first.devices = [iphone({ bus: 1, address: 7 })];
  discovery.scan();
  const handle = discovery.handles().get('1-7');
  t.ok(handle, 'the first scan opened the phone');

  const second = new FixtureBackend();
  second.devices = [iphone({ bus: 1, address: 7 }), iphone({ bus: 1, address: 8 })];
  discovery.replaceBackend(second);
  discovery.start({ hotplug: true });
  t.equal(discovery.handles().get('1-7'), handle, 'the same phone is not opened again');
  t.ok(discovery.handles().has('1-8'), 'one plugged in meanwhile is found by the new scan');
  t.equal(second.events.listenerCount('attach'), 1, 'hotplug follows the new backend');
  t.equal(first.events.listenerCount('attach'), 0, 'and not the first');

  discovery.close();
  discovery.start({ hotplug: true });
  t.equal(second.events.listenerCount('attach'), 0, 'a closed discovery does not start listening again');
});
