// Which devices we talk to and how: strict Apple usbmux matching, the
// configuration choice, and serial -> UDID. Shared by the cable and, later,
// libusb transports, so the policy lives in one place.
import type { CableDescriptor, ConfigurationDescriptor, InterfaceDescriptor } from './addon.js';

export const APPLE_VENDOR_ID = 0x05ac;
export const MUX_INTERFACE = { interfaceClass: 0xff, subclass: 0xfe, protocol: 0x02 } as const;

/** iPhone/iPad/iPod/Watch/TV in normal mode, T2, and Apple-silicon restore. */
export function isAppleMuxProduct(productId: number): boolean {
  return (
    (productId >= 0x1290 && productId <= 0x12af) ||
    productId === 0x8600 ||
    (productId >= 0x1901 && productId <= 0x1905)
  );
}

/** All three of class, subclass and protocol must match (usbmuxd's `||` is a bug). */
export function isMuxInterface(i: InterfaceDescriptor): boolean {
  return (
    i.interfaceClass === MUX_INTERFACE.interfaceClass &&
    i.subclass === MUX_INTERFACE.subclass &&
    i.protocol === MUX_INTERFACE.protocol
  );
}

export interface MuxSelection {
  configuration: number;
  interfaceNumber: number;
  endpointIn: number;
  endpointOut: number;
  maxPacketSize: number;
  /** True when the device must be switched to `configuration` first. */
  needsSetConfiguration: boolean;
}

/** A bulk wMaxPacketSize is at most 1024 (SuperSpeed); 0 means "use 64", as usbmuxd. */
function plausiblePacketSize(size: number): boolean {
  return size === 0 || (size >= 8 && size <= 1024);
}

function muxEndpoints(i: InterfaceDescriptor) {
  if (i.endpoints.length !== 2) return null;
  const bulk = i.endpoints.filter((e) => (e.attributes & 0x03) === 0x02);
  const inEp = bulk.find((e) => (e.address & 0x80) !== 0 && (e.address & 0x0f) !== 0);
  const outEp = bulk.find((e) => (e.address & 0x80) === 0 && (e.address & 0x0f) !== 0);
  if (!inEp || !outEp || !plausiblePacketSize(outEp.maxPacketSize) || (outEp.address & 0x70) || (inEp.address & 0x70)) return null;
  return { inEp, outEp };
}

function findMux(config: ConfigurationDescriptor): MuxSelection | null {
  for (const iface of config.interfaces) {
    if (!isMuxInterface(iface)) continue;
    const eps = muxEndpoints(iface);
    if (!eps) continue;
    return {
      configuration: config.value,
      interfaceNumber: iface.number,
      endpointIn: eps.inEp.address,
      endpointOut: eps.outEp.address,
      maxPacketSize: eps.outEp.maxPacketSize > 0 ? eps.outEp.maxPacketSize : 64,
      needsSetConfiguration: false,
    };
  }
  return null;
}

/**
 * Keeps the active configuration when it already has the mux interface (no
 * SET_CONFIGURATION, so no EBUSY against other claimers); otherwise takes the
 * highest-numbered configuration that has it.
 */
export function selectMuxConfiguration(d: CableDescriptor): MuxSelection | null {
  const active = d.configurations.find((c) => c.value === d.activeConfiguration);
  const current = active ? findMux(active) : null;
  if (current) return current;
  const byValue = [...d.configurations].sort((a, b) => b.value - a.value);
  for (const config of byValue) {
    const found = findMux(config);
    if (found) return { ...found, needsSetConfiguration: true };
  }
  return null;
}

/** A 24-character USB serial becomes a new-style UDID with a dash after 8. */
export function serialToUdid(serial: string): string {
  return serial.length === 24 ? `${serial.slice(0, 8)}-${serial.slice(8)}` : serial;
}

export type DeviceCheck = { ok: true; selection: MuxSelection } | { ok: false; reason: string };

export function checkDevice(d: CableDescriptor): DeviceCheck {
  if (d.vendorId !== APPLE_VENDOR_ID) {
    return { ok: false, reason: `vendor 0x${d.vendorId.toString(16)} is not Apple` };
  }
  if (!isAppleMuxProduct(d.productId)) {
    return { ok: false, reason: `product 0x${d.productId.toString(16)} is not an Apple mux device` };
  }
  const selection = selectMuxConfiguration(d);
  if (!selection) return { ok: false, reason: 'no usbmux interface (ff/fe/02 with two bulk endpoints)' };
  return { ok: true, selection };
}
