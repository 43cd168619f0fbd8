// USB identity of a simulated phone, shaped like a real iPhone in its initial
// mode: PTP in configuration 1 and the usbmux interface in configuration 4.
import type { CableDescriptor, FfsInterfaceSpec } from '../native/addon.js';

export interface SimUsbIdentity {
  serial: string;
  productId?: number;
  /** 512 for high speed, 1024 for super speed. */
  maxPacketSize?: number;
  speed?: number;
  /** 0 models Debian's udev rule, which leaves the phone unconfigured. */
  activeConfiguration?: number;
}

export function iphoneDescriptor(id: SimUsbIdentity): CableDescriptor {
  const mps = id.maxPacketSize ?? 512;
  const bulk = (address: number) => ({ address, attributes: 0x02, maxPacketSize: mps });
  const ptp = {
    number: 0,
    interfaceClass: 6,
    subclass: 1,
    protocol: 1,
    endpoints: [bulk(0x81), bulk(0x02), { address: 0x83, attributes: 0x03, maxPacketSize: 64 }],
  };
  const mux = { number: 1, interfaceClass: 0xff, subclass: 0xfe, protocol: 2, endpoints: [bulk(0x04), bulk(0x85)] };
  return {
    vendorId: 0x05ac,
    productId: id.productId ?? 0x12a8,
    bcdDevice: 0x1405,
    speed: id.speed ?? 3,
    activeConfiguration: id.activeConfiguration ?? 0,
    serial: id.serial,
    configurations: [
      { value: 1, interfaces: [ptp] },
      { value: 2, interfaces: [{ number: 0, interfaceClass: 1, subclass: 1, protocol: 0, endpoints: [] }] },
      { value: 3, interfaces: [ptp, mux] },
      { value: 4, interfaces: [ptp, mux, { number: 2, interfaceClass: 0xff, subclass: 0xfd, protocol: 1, endpoints: [bulk(0x86), bulk(0x07)] }] },
    ],
  };
}

/**
 * The interfaces a phone shows around the mux, for a USB gadget: FunctionFS
 * placeholders that make the gadget's configurations look like the ones
 * above (PTP in 1, "iPod USB Interface" audio in 2, PTP + mux in 3, PTP + mux
 * + Apple USB Ethernet in 4). They carry no data.
 */
export const PHONE_FFS_INTERFACES = {
  ptp: {
    interfaceClass: 6,
    subclass: 1,
    protocol: 1,
    name: 'PTP',
    endpoints: [{ direction: 'in' }, { direction: 'out' }, { direction: 'in', type: 'interrupt', maxPacketSize: 64, intervalMs: 8 }],
  },
  audio: { interfaceClass: 1, subclass: 1, protocol: 0, name: 'iPod USB Interface', endpoints: [] },
  ethernet: {
    interfaceClass: 0xff,
    subclass: 0xfd,
    protocol: 1,
    name: 'Apple USB Ethernet',
    endpoints: [{ direction: 'in' }, { direction: 'out' }],
  },
} as const satisfies Record<string, FfsInterfaceSpec>;

export type PhoneFfsInterface = keyof typeof PHONE_FFS_INTERFACES;
