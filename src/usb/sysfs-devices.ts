// The USB devices plugged in right now, read from Linux sysfs in the shape
// the npm `usb` package reports them (usb-descriptor.ts's UsbDeviceLike).
// The daemon's first scan uses this, so a phone that is already plugged in is
// opened without loading the usb package (fourteen files and a native addon,
// seconds of the lab's emulated start-up); the package comes after, for
// hotplug (daemon.ts). libusb's Linux backend reads these same files, so the
// descriptors are the ones the package would have given.
//
// Per device directory (/sys/bus/usb/devices/1-2): idVendor and idProduct
// (hex) are all that is read of anything that is not an Apple usbmux product;
// for the rest, busnum and devnum (decimal), bConfigurationValue (empty when
// unconfigured) and `descriptors`: the device descriptor followed by every
// configuration's descriptors, as the device sent them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigDescriptor, DeviceDescriptor, EndpointDescriptor, InterfaceDescriptor } from 'usb';

import type { UsbDeviceLike } from './usb-descriptor.js';

export const SYSFS_USB_DEVICES = '/sys/bus/usb/devices';

const DEVICE = 1;
const CONFIGURATION = 2;
const INTERFACE = 4;
const ENDPOINT = 5;
const NONE = Buffer.alloc(0);

/** Every device under `root` (interfaces and unreadable entries skipped); [] where there is no sysfs. */
export function readSysfsUsbDevices(root = SYSFS_USB_DEVICES): UsbDeviceLike[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const devices: UsbDeviceLike[] = [];
  // Interfaces are "1-2:1.0"; devices and root hubs ("usb1") have no colon.
  for (const name of names.filter((n) => !n.includes(':'))) {
    const device = sysfsDevice(join(root, name));
    if (device) devices.push(device);
  }
  return devices;
}

function attribute(dir: string, name: string): string {
  return readFileSync(join(dir, name), 'latin1').trim();
}

function sysfsDevice(dir: string): UsbDeviceLike | undefined {
  let idVendor: number;
  let idProduct: number;
  let busNumber: number;
  let deviceAddress: number;
  try {
    idVendor = parseInt(attribute(dir, 'idVendor'), 16);
    idProduct = parseInt(attribute(dir, 'idProduct'), 16);
    busNumber = Number(attribute(dir, 'busnum'));
    deviceAddress = Number(attribute(dir, 'devnum'));
  } catch {
    return undefined;
  }
  if (![idVendor, idProduct, busNumber, deviceAddress].every(Number.isInteger)) return undefined;
  // Everything past the ids is read when discovery asks for it (only of an
  // Apple candidate), once; a file that cannot be read reads as no
  // descriptors, as the usb package's getters fail then.
  let raw: Buffer | undefined;
  const descriptors = () => (raw ??= readFileSync(join(dir, 'descriptors')));
  let parsed: { device: DeviceDescriptor; configurations: ConfigDescriptor[] } | undefined;
  const parse = () => (parsed ??= parseDescriptors(descriptors()));
  return {
    busNumber,
    deviceAddress,
    get deviceDescriptor() {
      // The ids, without reading `descriptors`, are what a stranger is judged on.
      return parsed?.device ?? { ...emptyDeviceDescriptor(), idVendor, idProduct };
    },
    get allConfigDescriptors() {
      return parse().configurations;
    },
    get configDescriptor() {
      const value = Number(attribute(dir, 'bConfigurationValue') || 0);
      return value ? parse().configurations.find((c) => c.bConfigurationValue === value) : undefined;
    },
  } as UsbDeviceLike;
}

function emptyDeviceDescriptor(): DeviceDescriptor {
  return {
    bLength: 18,
    bDescriptorType: DEVICE,
    bcdUSB: 0,
    bDeviceClass: 0,
    bDeviceSubClass: 0,
    bDeviceProtocol: 0,
    bMaxPacketSize0: 0,
    idVendor: 0,
    idProduct: 0,
    bcdDevice: 0,
    iManufacturer: 0,
    iProduct: 0,
    iSerialNumber: 0,
    bNumConfigurations: 0,
  };
}

/**
 * `descriptors` as libusb parses it: the 18-byte device descriptor, then per
 * configuration its descriptor and wTotalLength bytes of interfaces (their
 * alternate settings grouped by interface number) and endpoints; class and
 * vendor descriptors between them are skipped. Throws on a truncated or
 * malformed blob.
 */
export function parseDescriptors(bytes: Buffer): { device: DeviceDescriptor; configurations: ConfigDescriptor[] } {
  if (bytes.length < 18 || bytes[0]! < 18 || bytes[1] !== DEVICE) throw new Error('no device descriptor');
  const device: DeviceDescriptor = {
    bLength: bytes[0]!,
    bDescriptorType: DEVICE,
    bcdUSB: bytes.readUInt16LE(2),
    bDeviceClass: bytes[4]!,
    bDeviceSubClass: bytes[5]!,
    bDeviceProtocol: bytes[6]!,
    bMaxPacketSize0: bytes[7]!,
    idVendor: bytes.readUInt16LE(8),
    idProduct: bytes.readUInt16LE(10),
    bcdDevice: bytes.readUInt16LE(12),
    iManufacturer: bytes[14]!,
    iProduct: bytes[15]!,
    iSerialNumber: bytes[16]!,
    bNumConfigurations: bytes[17]!,
  };
  const configurations: ConfigDescriptor[] = [];
  let at = device.bLength;
  while (at < bytes.length) {
    if (at + 9 > bytes.length || bytes[at + 1] !== CONFIGURATION || bytes[at]! < 9) throw new Error(`no configuration descriptor at byte ${at}`);
    const total = bytes.readUInt16LE(at + 2);
    if (total < bytes[at]! || at + total > bytes.length) throw new Error(`configuration at byte ${at} runs past the descriptors`);
    configurations.push(parseConfiguration(bytes.subarray(at, at + total)));
    at += total;
  }
  return { device, configurations };
}

function parseConfiguration(c: Buffer): ConfigDescriptor {
  const byNumber = new Map<number, InterfaceDescriptor[]>();
  let current: InterfaceDescriptor | undefined;
  for (let at = c[0]!; at < c.length; ) {
    const length = c[at]!;
    if (length < 2 || at + length > c.length) throw new Error(`bad descriptor length ${length} in configuration ${c[5]}`);
    const type = c[at + 1];
    if (type === INTERFACE && length >= 9) {
      current = {
        bLength: length,
        bDescriptorType: INTERFACE,
        bInterfaceNumber: c[at + 2]!,
        bAlternateSetting: c[at + 3]!,
        bNumEndpoints: c[at + 4]!,
        bInterfaceClass: c[at + 5]!,
        bInterfaceSubClass: c[at + 6]!,
        bInterfaceProtocol: c[at + 7]!,
        iInterface: c[at + 8]!,
        extra: NONE,
        endpoints: [],
      };
      const alternates = byNumber.get(current.bInterfaceNumber) ?? [];
      alternates.push(current);
      byNumber.set(current.bInterfaceNumber, alternates);
    } else if (type === ENDPOINT && length >= 7 && current) {
      const endpoint: EndpointDescriptor = {
        bLength: length,
        bDescriptorType: ENDPOINT,
        bEndpointAddress: c[at + 2]!,
        bmAttributes: c[at + 3]!,
        wMaxPacketSize: c.readUInt16LE(at + 4),
        bInterval: c[at + 6]!,
        // Audio endpoints carry two more bytes.
        bRefresh: length >= 9 ? c[at + 7]! : 0,
        bSynchAddress: length >= 9 ? c[at + 8]! : 0,
        extra: NONE,
      };
      current.endpoints.push(endpoint);
    }
    at += length;
  }
  const interfaces = [...byNumber.values()];
  return {
    bLength: c[0]!,
    bDescriptorType: CONFIGURATION,
    wTotalLength: c.readUInt16LE(2),
    bNumInterfaces: c[4]!,
    bConfigurationValue: c[5]!,
    iConfiguration: c[6]!,
    bmAttributes: c[7]!,
    bMaxPower: c[8]!,
    extra: NONE,
    interfaces,
  };
}
