// From what the npm `usb` package (v2) reports about a device without
// opening it, to the descriptor shape that src/native/config-select.ts judges
// (the same shape a virtual cable announces), and from its choice to the
// request the data plane executes.
import type { Device } from 'usb';

import type { CableDescriptor, ConfigurationDescriptor, InterfaceDescriptor, UsbOpenRequest } from '../native/addon.js';
import { APPLE_VENDOR_ID, isAppleMuxProduct, type MuxSelection } from '../native/config-select.js';

/**
 * The parts of a `usb` Device we read. All of them come from descriptors
 * libusb cached at enumeration (sysfs on Linux): no open, no USB traffic.
 */
export type UsbDeviceLike = Pick<Device, 'busNumber' | 'deviceAddress' | 'deviceDescriptor' | 'allConfigDescriptors' | 'configDescriptor'>;

/** `bus-address`, unique among attached devices. */
export function usbDeviceKey(d: Pick<Device, 'busNumber' | 'deviceAddress'>): string {
  return `${d.busNumber}-${d.deviceAddress}`;
}

/** Decided from the device descriptor alone, before any configuration descriptor is read. */
export function isAppleCandidate(d: Pick<Device, 'deviceDescriptor'>): boolean {
  return d.deviceDescriptor.idVendor === APPLE_VENDOR_ID && isAppleMuxProduct(d.deviceDescriptor.idProduct);
}

type UsbConfig = Device['allConfigDescriptors'][number];
type UsbInterface = UsbConfig['interfaces'][number][number];

function interfaceOf(alternates: UsbInterface[]): InterfaceDescriptor | null {
  // Alternate setting 0 is what a claimed interface starts in.
  const alt = alternates.find((a) => a.bAlternateSetting === 0) ?? alternates[0];
  if (!alt) return null;
  return {
    number: alt.bInterfaceNumber,
    interfaceClass: alt.bInterfaceClass,
    subclass: alt.bInterfaceSubClass,
    protocol: alt.bInterfaceProtocol,
    endpoints: alt.endpoints.map((e) => ({ address: e.bEndpointAddress, attributes: e.bmAttributes, maxPacketSize: e.wMaxPacketSize })),
  };
}

function configurationOf(c: UsbConfig): ConfigurationDescriptor {
  const interfaces: InterfaceDescriptor[] = [];
  for (const alternates of c.interfaces) {
    const i = interfaceOf(alternates);
    if (i) interfaces.push(i);
  }
  return { value: c.bConfigurationValue, interfaces };
}

/** The active configuration's value, or 0 when unconfigured (Debian's udev rule) or unreadable. */
function activeConfiguration(d: UsbDeviceLike): number {
  try {
    return d.configDescriptor?.bConfigurationValue ?? 0;
  } catch {
    return 0;
  }
}

/**
 * The device as config-select.ts sees it. The serial is left empty: reading
 * it takes a control transfer, which the data plane does once it has opened
 * the device (and reports in the `attached` event).
 */
export function describeUsbDevice(d: UsbDeviceLike): CableDescriptor {
  let configs: UsbConfig[] = [];
  try {
    configs = d.allConfigDescriptors;
  } catch {
    configs = [];
  }
  return {
    vendorId: d.deviceDescriptor.idVendor,
    productId: d.deviceDescriptor.idProduct,
    bcdDevice: d.deviceDescriptor.bcdDevice,
    activeConfiguration: activeConfiguration(d),
    serial: '',
    configurations: configs.map(configurationOf),
  };
}

export function openRequest(d: UsbDeviceLike, selection: MuxSelection): UsbOpenRequest {
  return {
    busNumber: d.busNumber,
    deviceAddress: d.deviceAddress,
    vendorId: d.deviceDescriptor.idVendor,
    productId: d.deviceDescriptor.idProduct,
    configuration: selection.configuration,
    interfaceNumber: selection.interfaceNumber,
    endpointIn: selection.endpointIn,
    endpointOut: selection.endpointOut,
    maxPacketSize: selection.maxPacketSize,
  };
}
