// The parameters a client names in a URL (a UDID, a port) checked where
// they are read, and the device and tunnel they name. A UDID is 40 hex
// digits, or 8 and 16 with a dash (iPhone XS on); we accept letters,
// digits and dashes up to MAX_UDID_LENGTH, which covers both and keeps what
// a client sends out of log lines and close reasons in any other shape.
import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { ManagedTunnel, TunnelManager } from '../tunnel/tunnel-manager.js';
import type { Logger } from '../util/log.js';

export const MAX_UDID_LENGTH = 64;
const UDID_SHAPE = /^[0-9A-Za-z-]+$/;
/** A port in a query string: 1 to 5 decimal digits, no sign, no spaces. */
const PORT_SHAPE = /^\d{1,5}$/;

export type Checked<T> = { ok: true; value: T } | { ok: false; why: string };

/** The path and query of a request target (already checked to start with '/'). */
export function splitTarget(url: string): { path: string; query: URLSearchParams } {
  const at = url.indexOf('?');
  return at < 0 ? { path: url, query: new URLSearchParams() } : { path: url.slice(0, at), query: new URLSearchParams(url.slice(at + 1)) };
}

/** One value of a query parameter: missing is undefined, twice is an error (which one would we act on?). */
export function single(query: URLSearchParams, name: string): Checked<string | undefined> {
  const all = query.getAll(name);
  if (all.length > 1) return { ok: false, why: `${name} is given ${all.length} times` };
  return { ok: true, value: all[0] };
}

export function checkUdid(text: string | undefined, name = 'udid'): Checked<string> {
  if (text === undefined || text.length === 0) return { ok: false, why: `${name} is missing` };
  if (text.length > MAX_UDID_LENGTH) return { ok: false, why: `${name} is over ${MAX_UDID_LENGTH} characters` };
  if (!UDID_SHAPE.test(text)) return { ok: false, why: `${name} has characters a UDID does not (letters, digits and '-' only)` };
  return { ok: true, value: text };
}

export function checkPort(text: string, name = 'port'): Checked<number> {
  const n = PORT_SHAPE.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) return { ok: false, why: `${name} is not an integer in 1..65535` };
  return { ok: true, value: n };
}

const withoutDashes = (udid: string) => udid.replace(/-/g, '').toUpperCase();

/**
 * The device a UDID names. As pymobiledevice3's tunneld, the UDID may come
 * without its dash (some Linux usbmuxd builds drop it) and in either case.
 */
export function findDevice(devices: DeviceTable, udid: string): DeviceRecord | undefined {
  // Tunnels run over the mux: only USB entries (a Wi-Fi one has no mux here).
  const exact = devices.byUdid(udid);
  if (exact && exact.connectionType !== 'Network') return exact;
  const key = withoutDashes(udid);
  return devices.visible().find((d) => d.connectionType !== 'Network' && withoutDashes(d.serialNumber) === key);
}

export function findTunnel(tunnels: TunnelManager, devices: DeviceTable, udid: string): { device: DeviceRecord; tunnel: ManagedTunnel } | undefined {
  const device = findDevice(devices, udid);
  const tunnel = device && tunnels.find(device);
  return device && tunnel ? { device, tunnel } : undefined;
}

/** Where both APIs reach the daemon's state. */
export interface TunnelApiContext {
  tunnels: TunnelManager;
  devices: DeviceTable;
  log: Logger;
}
