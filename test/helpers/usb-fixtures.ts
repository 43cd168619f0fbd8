// Devices as the npm `usb` package (v2) reports them before anything is
// opened: its DeviceDescriptor / ConfigDescriptor / InterfaceDescriptor /
// EndpointDescriptor types, with interfaces as arrays of alternate settings.
// A real iPhone's layout and the QEMU lab gadget's.
import type { ConfigDescriptor, DeviceDescriptor, EndpointDescriptor, InterfaceDescriptor } from 'usb';

import type { UsbDeviceLike } from '../../src/usb/usb-descriptor.js';

const none = Buffer.alloc(0);

export function endpoint(address: number, attributes = 0x02, wMaxPacketSize = 512): EndpointDescriptor {
  return { bLength: 7, bDescriptorType: 5, bEndpointAddress: address, bmAttributes: attributes, wMaxPacketSize, bInterval: 0, bRefresh: 0, bSynchAddress: 0, extra: none };
}

export function alt(number: number, cls: number, sub: number, proto: number, endpoints: EndpointDescriptor[], alternate = 0): InterfaceDescriptor {
  return {
    bLength: 9,
    bDescriptorType: 4,
    bInterfaceNumber: number,
    bAlternateSetting: alternate,
    bNumEndpoints: endpoints.length,
    bInterfaceClass: cls,
    bInterfaceSubClass: sub,
    bInterfaceProtocol: proto,
    iInterface: 0,
    extra: none,
    endpoints,
  };
}

export function config(value: number, interfaces: InterfaceDescriptor[][]): ConfigDescriptor {
  return { bLength: 9, bDescriptorType: 2, wTotalLength: 0, bNumInterfaces: interfaces.length, bConfigurationValue: value, iConfiguration: 0, bmAttributes: 0xc0, bMaxPower: 250, extra: none, interfaces };
}

export function deviceDescriptor(idVendor: number, idProduct: number, bNumConfigurations: number): DeviceDescriptor {
  return { bLength: 18, bDescriptorType: 1, bcdUSB: 0x0200, bDeviceClass: 0, bDeviceSubClass: 0, bDeviceProtocol: 0, bMaxPacketSize0: 64, idVendor, idProduct, bcdDevice: 0x1402, iManufacturer: 1, iProduct: 2, iSerialNumber: 3, bNumConfigurations };
}

export interface FixtureOptions {
  bus?: number;
  address?: number;
  /** 0: unconfigured, the `usb` package then returns undefined for configDescriptor. */
  active?: number;
  /** Called whenever a configuration descriptor is read (to prove nobody reads a stranger's). */
  onRead?: () => void;
}

export function fixture(dd: DeviceDescriptor, configs: ConfigDescriptor[], o: FixtureOptions = {}): UsbDeviceLike {
  return {
    busNumber: o.bus ?? 1,
    deviceAddress: o.address ?? 2,
    deviceDescriptor: dd,
    get allConfigDescriptors() {
      o.onRead?.();
      return configs;
    },
    get configDescriptor() {
      o.onRead?.();
      return configs.find((c) => c.bConfigurationValue === o.active);
    },
  };
}

const ptp = [alt(0, 6, 1, 1, [endpoint(0x81), endpoint(0x02), endpoint(0x83, 0x03, 64)])];
const mux = [alt(1, 0xff, 0xfe, 0x02, [endpoint(0x04), endpoint(0x85)])];
const valeria = [alt(2, 0xff, 0xfd, 0x01, [endpoint(0x86), endpoint(0x07)])];

/** An iPhone in its initial mode: PTP, iPod audio, PTP + mux, PTP + mux + ff/fd/01. */
export function iphone(o: FixtureOptions = {}, productId = 0x12a8): UsbDeviceLike {
  return fixture(deviceDescriptor(0x05ac, productId, 4), [
    config(1, [ptp]),
    config(2, [[alt(0, 1, 1, 0, [])]]),
    config(3, [ptp, mux]),
    config(4, [ptp, mux, valeria]),
  ], o);
}

/** The QEMU lab's FunctionFS gadget: one configuration, the mux interface 0 with IN 0x81 listed first. */
export function labGadget(o: FixtureOptions = {}): UsbDeviceLike {
  return fixture(deviceDescriptor(0x05ac, 0x12a8, 1), [config(1, [[alt(0, 0xff, 0xfe, 0x02, [endpoint(0x81), endpoint(0x02)])]])], o);
}
