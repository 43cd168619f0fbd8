// What the user commands and the phone benchmark share: find a phone through
// the daemon (by UDID, or the first one), open lockdownd on it, and start a
// session with the pair record the daemon keeps for it.
import { LockdownClient, LOCKDOWN_PORT } from '../lockdown/client.js';
import { hostCredentials } from '../pairing/certificates.js';
import { isPlistDict, parsePlist, type PlistDict, type PlistValue } from '../protocol/plist-codec.js';
import type { UsbmuxClient, UsbmuxDevice } from './usbmux-client.js';

/** The phone with this UDID, or the only/first one; waits up to `waitMs` for it to be listed. */
export async function findDevice(usbmux: UsbmuxClient, udid: string | undefined, waitMs = 0): Promise<UsbmuxDevice> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const list = await usbmux.listDevices();
    const d = udid ? list.find((x) => x.serialNumber === udid) : list[0];
    if (d) return d;
    if (Date.now() >= deadline) throw new Error(udid ? `no device with UDID ${udid}` : 'no device attached');
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function openLockdown(usbmux: UsbmuxClient, device: UsbmuxDevice): Promise<LockdownClient> {
  return new LockdownClient(await usbmux.connect(device.deviceId, LOCKDOWN_PORT), { label: 'tsmuxd' });
}

/** The daemon's pair record for this phone, or undefined if it has none. */
export async function readRecord(usbmux: UsbmuxClient, udid: string): Promise<PlistDict | undefined> {
  let data: Buffer;
  try {
    data = await usbmux.readPairRecord(udid);
  } catch {
    return undefined;
  }
  const v = parsePlist(data);
  return isPlistDict(v) ? v : undefined;
}

/** StartSession (TLS) with the stored record; throws if there is none. */
export async function startSession(usbmux: UsbmuxClient, lockdown: LockdownClient, udid: string): Promise<PlistDict> {
  const record = await readRecord(usbmux, udid);
  if (!record || typeof record.HostID !== 'string') throw new Error(`no pair record for ${udid}: run tsmuxd pair ${udid}`);
  await lockdown.startSession(record.HostID, await usbmux.readBUID(), hostCredentials(record));
  return record;
}

/** Plist values as JSON: data as base64, dates as ISO strings, 64-bit integers as numbers or strings. */
export function toJson(v: PlistValue): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(toJson);
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  return v;
}

/** ideviceinfo's readable form: `Key: value`, nested dicts indented. */
export function formatValue(v: PlistValue, indent = ''): string {
  if (isPlistDict(v)) {
    return Object.entries(v)
      .map(([k, x]) => (isPlistDict(x) || Array.isArray(x) ? `${indent}${k}:\n${formatValue(x, `${indent}  `)}` : `${indent}${k}: ${formatValue(x)}`))
      .join('\n');
  }
  if (Array.isArray(v)) return v.map((x) => `${indent}- ${isPlistDict(x) ? `\n${formatValue(x, `${indent}  `)}` : formatValue(x)}`).join('\n');
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (v instanceof Date) return v.toISOString();
  return String(v);
}
