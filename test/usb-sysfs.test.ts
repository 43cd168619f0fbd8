// The daemon's first USB scan reads sysfs (src/usb/sysfs-devices.ts), not the
// npm usb package. Here a sysfs tree is written in a temp dir from the same
// fixtures the usb-package tests use (serialised to the bytes a device sends,
// with the class descriptors a phone has between them), and what discovery
// decides from it must be what it decides from the package's shape.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';
import type { ConfigDescriptor, DeviceDescriptor } from 'usb';

import { checkDevice } from '../src/native/config-select.js';
import { parseDescriptors, readSysfsUsbDevices } from '../src/usb/sysfs-devices.js';
import { describeUsbDevice, isAppleCandidate, openRequest, usbDeviceKey, type UsbDeviceLike } from '../src/usb/usb-descriptor.js';
import { tempDir } from './helpers/harness.js';
import { alt, config, deviceDescriptor, endpoint, fixture, iphone, labGadget } from './helpers/usb-fixtures.js';

function deviceBytes(d: DeviceDescriptor): Buffer {
  const b = Buffer.alloc(18);
  b.writeUInt8(18, 0);
  b.writeUInt8(1, 1);
  b.writeUInt16LE(d.bcdUSB, 2);
  b.set([d.bDeviceClass, d.bDeviceSubClass, d.bDeviceProtocol, d.bMaxPacketSize0], 4);
  b.writeUInt16LE(d.idVendor, 8);
  b.writeUInt16LE(d.idProduct, 10);
  b.writeUInt16LE(d.bcdDevice, 12);
  b.set([d.iManufacturer, d.iProduct, d.iSerialNumber, d.bNumConfigurations], 14);
  return b;
}

/** A configuration as a device sends it, with an interface association and a class-specific descriptor in it. */
function configBytes(c: ConfigDescriptor): Buffer {
  const parts: Buffer[] = [Buffer.from([8, 0x0b, 0, 1, 0xff, 0, 0, 0])];
  for (const alternates of c.interfaces) {
    for (const i of alternates) {
      parts.push(Buffer.from([9, 4, i.bInterfaceNumber, i.bAlternateSetting, i.endpoints.length, i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol, 0]));
      parts.push(Buffer.from([5, 0x24, 0, 1, 2]));
      for (const e of i.endpoints) {
        const ep = Buffer.from([7, 5, e.bEndpointAddress, e.bmAttributes, 0, 0, e.bInterval]);
        ep.writeUInt16LE(e.wMaxPacketSize, 4);
        parts.push(ep);
      }
    }
  }
  const body = Buffer.concat(parts);
  const head = Buffer.from([9, 2, 0, 0, c.interfaces.length, c.bConfigurationValue, 0, c.bmAttributes, c.bMaxPower]);
  head.writeUInt16LE(9 + body.length, 2);
  return Buffer.concat([head, body]);
}

/** Writes `d` as sysfs shows it under root/name; `active` 0 is unconfigured (an empty bConfigurationValue). */
function writeSysfsDevice(root: string, name: string, d: UsbDeviceLike, active: number): void {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const dd = d.deviceDescriptor;
  const hex = (n: number) => `${n.toString(16).padStart(4, '0')}\n`;
  writeFileSync(join(dir, 'idVendor'), hex(dd.idVendor));
  writeFileSync(join(dir, 'idProduct'), hex(dd.idProduct));
  writeFileSync(join(dir, 'busnum'), `${d.busNumber}\n`);
  writeFileSync(join(dir, 'devnum'), `${d.deviceAddress}\n`);
  writeFileSync(join(dir, 'bConfigurationValue'), active ? `${active}\n` : '\n');
  writeFileSync(join(dir, 'descriptors'), Buffer.concat([deviceBytes(dd), ...d.allConfigDescriptors.map(configBytes)]));
}

t.test('what discovery decides from sysfs is what it decides from the usb package', async (t) => {
  const root = tempDir(t);
  const cases: Array<[string, UsbDeviceLike, number]> = [
    ['1-2', iphone({ bus: 1, address: 2, active: 0 }), 0],
    ['1-3', iphone({ bus: 1, address: 3, active: 3 }), 3],
    ['2-1', labGadget({ bus: 2, address: 7, active: 1 }), 1],
  ];
  for (const [name, d, active] of cases) writeSysfsDevice(root, name, d, active);
  writeSysfsDevice(root, 'usb1', fixture(deviceDescriptor(0x1d6b, 0x0002, 1), [config(1, [[alt(0, 9, 0, 0, [endpoint(0x81, 0x03, 4)])]])], { bus: 1, address: 1 }), 1);
  mkdirSync(join(root, '1-2:4.1'));
  writeFileSync(join(root, '1-2:4.1', 'bInterfaceClass'), 'ff\n');

  const found = readSysfsUsbDevices(root);
  t.same(found.map(usbDeviceKey).sort(), ['1-1', '1-2', '1-3', '2-7'], 'devices and the root hub; interface entries skipped');
  for (const [, want] of cases) {
    const got = found.find((d) => usbDeviceKey(d) === usbDeviceKey(want))!;
    t.ok(isAppleCandidate(got), `${usbDeviceKey(want)} is an Apple candidate`);
    t.same(describeUsbDevice(got), describeUsbDevice(want), `${usbDeviceKey(want)}: the same descriptor`);
    const [a, b] = [checkDevice(describeUsbDevice(got)), checkDevice(describeUsbDevice(want))];
    t.same(a, b, `${usbDeviceKey(want)}: the same choice`);
    if (a.ok && b.ok) t.same(openRequest(got, a.selection), openRequest(want, b.selection), `${usbDeviceKey(want)}: the same open request`);
  }
  t.notOk(isAppleCandidate(found.find((d) => usbDeviceKey(d) === '1-1')!), 'the root hub is not');
});

t.test('a stranger is judged on its ids alone', async (t) => {
  const root = tempDir(t);
  const dir = join(root, '3-4');
  mkdirSync(dir);
  writeFileSync(join(dir, 'idVendor'), '1234\n');
  writeFileSync(join(dir, 'idProduct'), '12a8\n');
  writeFileSync(join(dir, 'busnum'), '3\n');
  writeFileSync(join(dir, 'devnum'), '4\n');
  // No descriptors file at all: reading it would throw.
  const [d] = readSysfsUsbDevices(root);
  t.equal(d!.deviceDescriptor.idVendor, 0x1234);
  t.notOk(isAppleCandidate(d!), 'not an Apple product, and nothing else was read');
});

t.test('broken descriptors read as none; no sysfs is no devices', async (t) => {
  t.throws(() => parseDescriptors(Buffer.alloc(10)), /no device descriptor/);
  const dd = deviceBytes(deviceDescriptor(0x05ac, 0x12a8, 1));
  const cfg = configBytes(config(1, [[alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04), endpoint(0x85)])]]));
  t.throws(() => parseDescriptors(Buffer.concat([dd, cfg.subarray(0, cfg.length - 3)])), /runs past/, 'a truncated configuration');
  const zero = Buffer.from(cfg);
  zero[9] = 0; // the interface association's length
  t.throws(() => parseDescriptors(Buffer.concat([dd, zero])), /bad descriptor length/, 'a zero-length descriptor');

  const root = tempDir(t);
  writeSysfsDevice(root, '1-5', iphone({ bus: 1, address: 5 }), 0);
  writeFileSync(join(root, '1-5', 'descriptors'), dd);
  const [d] = readSysfsUsbDevices(root);
  t.same(describeUsbDevice(d!).configurations, [], 'a device descriptor with no configurations');
  t.same(readSysfsUsbDevices(join(root, 'missing')), [], 'no /sys/bus/usb');
});
