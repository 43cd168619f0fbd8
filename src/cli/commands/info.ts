// `tsmuxd info [UDID] [--domain D] [KEY]`: lockdown values, like ideviceinfo.
// With a pair record it starts a TLS session and can read everything;
// without one (or with --simple) only what a phone gives out before a session.
import { parseArgs } from 'node:util';

import { LockdownError } from '../../lockdown/errors.js';
import { findDevice, formatValue, openLockdown, readRecord, startSession, toJson } from '../../client/lockdown-session.js';
import { KEYLOG_HELP, usbmuxClient } from './lockdown-session.js';

export const INFO_HELP = `usage: tsmuxd info [UDID] [--domain DOMAIN] [KEY] [--simple] [--json] [--socket ADDR] [--keylog FILE]
  lockdown values of a phone (the first one if UDID is left out)
${KEYLOG_HELP}`;

export async function runInfo(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      domain: { type: 'string', short: 'q' },
      simple: { type: 'boolean', short: 's' },
      json: { type: 'boolean' },
      socket: { type: 'string' },
      keylog: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(INFO_HELP);
    return 0;
  }
  const [first, second] = positionals;
  // One positional is a UDID if it looks like one, else a key.
  const looksLikeUdid = (s: string) => /^[0-9a-f]{40}$|^[0-9A-F]{8}-[0-9A-F]{16}$/i.test(s);
  const udid = second !== undefined || (first !== undefined && looksLikeUdid(first)) ? first : undefined;
  const key = second ?? (udid === undefined ? first : undefined);

  const usbmux = usbmuxClient(values);
  const device = await findDevice(usbmux, udid);
  const lockdown = await openLockdown(usbmux, device);
  try {
    if (!values.simple && (await readRecord(usbmux, device.serialNumber))) await startSession(usbmux, lockdown, device.serialNumber);
    const value = await lockdown.getValue(key, values.domain);
    if (values.json) process.stdout.write(`${JSON.stringify(toJson(value), null, 2)}\n`);
    else process.stdout.write(`${formatValue(value)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof LockdownError) {
      process.stderr.write(`tsmuxd info: ${device.serialNumber}: ${err.code}${err.code === 'GetProhibited' ? ' (pair first: tsmuxd pair)' : ''}\n`);
      return 1;
    }
    throw err;
  } finally {
    lockdown.destroy();
  }
}
