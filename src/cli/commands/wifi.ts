// `tsmuxd wifi enable|disable|status [UDID]`: the phone's "show this phone
// on Wi-Fi" switch, EnableWifiConnections in the lockdown domain
// com.apple.mobile.wireless_lockdown (reference tunnel-wifi-remote §3.1), set
// over USB in a session with the daemon's pair record. With it on, a paired
// phone announces itself over mDNS and the daemon lists it as a Network
// entry too (docs/wifi.md).
import { parseArgs } from 'node:util';

import type { UsbmuxClient, UsbmuxDevice } from '../../client/index.js';
import { openLockdown, startSession } from '../../client/lockdown-session.js';
import { LockdownError } from '../../lockdown/errors.js';
import { UsageError } from '../usage-error.js';
import { KEYLOG_HELP, usbmuxClient } from './lockdown-session.js';

export const WIFI_HELP = `usage: tsmuxd wifi enable|disable|status [UDID] [--json] [--socket ADDR] [--keylog FILE]
  turn a phone's Wi-Fi connections on or off (EnableWifiConnections, over USB),
  or show the setting; the first USB phone if UDID is left out
${KEYLOG_HELP}`;

const DOMAIN = 'com.apple.mobile.wireless_lockdown';
const KEY = 'EnableWifiConnections';

/** A phone on USB: the setting is changed over the cable, as Finder does. */
async function usbDevice(usbmux: UsbmuxClient, udid: string | undefined): Promise<UsbmuxDevice> {
  const list = await usbmux.listDevices();
  const usb = list.filter((d) => d.properties.ConnectionType !== 'Network');
  const d = udid ? usb.find((x) => x.serialNumber === udid) : usb[0];
  if (d) return d;
  throw new Error(udid ? `no phone with UDID ${udid} on USB` : 'no phone on USB');
}

export async function runWifi(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      socket: { type: 'string' },
      keylog: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(WIFI_HELP);
    return 0;
  }
  const [verb, udid, extra] = positionals;
  if ((verb !== 'enable' && verb !== 'disable' && verb !== 'status') || extra !== undefined) {
    throw new UsageError(`tsmuxd wifi: enable, disable or status, and at most one UDID\n${WIFI_HELP}`);
  }
  const usbmux = usbmuxClient(values);
  const device = await usbDevice(usbmux, udid);
  const lockdown = await openLockdown(usbmux, device);
  try {
    await startSession(usbmux, lockdown, device.serialNumber);
    if (verb !== 'status') await lockdown.setValue(KEY, verb === 'enable', DOMAIN);
    const value = await lockdown.getValue(KEY, DOMAIN);
    const enabled = value === true;
    if (values.json) process.stdout.write(`${JSON.stringify({ udid: device.serialNumber, enableWifiConnections: enabled })}\n`);
    else process.stdout.write(`${device.serialNumber}: Wi-Fi connections ${enabled ? 'enabled' : 'disabled'}\n`);
    return 0;
  } catch (err) {
    if (err instanceof LockdownError) {
      process.stderr.write(`tsmuxd wifi: ${device.serialNumber}: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    lockdown.destroy();
  }
}
