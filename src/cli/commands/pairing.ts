// `tsmuxd pair | validate | unpair [UDID]`. Pair waits while the phone shows
// its Trust dialog (asking again every second, with the time on a TTY) until
// the user answers or --wait runs out, then hands the record to the daemon
// (SavePairRecord), which broadcasts Paired.
import { parseArgs } from 'node:util';

import type { UsbmuxClient, UsbmuxDevice } from '../../client/index.js';
import type { LockdownClient } from '../../lockdown/client.js';
import { LockdownError } from '../../lockdown/errors.js';
import { pairDevice, preparePairRecord } from '../../pairing/pair.js';
import { toXml } from '../../protocol/plist-codec.js';
import { findDevice, openLockdown, readRecord, startSession } from '../../client/lockdown-session.js';
import { KEYLOG_HELP, usbmuxClient } from './lockdown-session.js';

export const PAIRING_HELP = `usage: tsmuxd pair [UDID] [--wait SECONDS] [--json] [--socket ADDR] [--keylog FILE]
       tsmuxd validate [UDID] [--json] [--socket ADDR] [--keylog FILE]
       tsmuxd unpair [UDID] [--json] [--socket ADDR] [--keylog FILE]
${KEYLOG_HELP}`;

type Outcome = { udid: string; result: string; error?: string };

function report(json: boolean | undefined, o: Outcome, text: string): number {
  if (json) process.stdout.write(`${JSON.stringify(o)}\n`);
  else (o.error ? process.stderr : process.stdout).write(`${text}\n`);
  return o.error ? 1 : 0;
}

async function pair(usbmux: UsbmuxClient, device: UsbmuxDevice, waitSeconds: number, json?: boolean): Promise<number> {
  const udid = device.serialNumber;
  const buid = await usbmux.readBUID();
  let lockdown: LockdownClient = await openLockdown(usbmux, device);
  const pending = await preparePairRecord(lockdown, buid);
  const started = Date.now();
  const tty = process.stderr.isTTY && !json;
  let told = false;
  try {
    for (;;) {
      try {
        if (lockdown.closed) lockdown = await openLockdown(usbmux, await findDevice(usbmux, udid, 10_000));
        const record = await pairDevice(lockdown, pending);
        const current = await findDevice(usbmux, udid, 10_000).catch(() => device);
        await usbmux.savePairRecord(udid, Buffer.from(toXml(record), 'utf8'), current.deviceId);
        if (tty && told) process.stderr.write('\n');
        return report(json, { udid, result: 'paired' }, `SUCCESS: Paired with device ${udid}`);
      } catch (err) {
        if (!(err instanceof LockdownError)) throw err;
        if (err.code === 'UserDeniedPairing') {
          if (tty && told) process.stderr.write('\n');
          return report(json, { udid, result: 'denied', error: err.code }, `ERROR: ${udid}: the user denied the trust dialog`);
        }
        const waiting = err.code === 'PairingDialogResponsePending' || err.code === 'PasswordProtected';
        // The phone drops off USB after the tap; a closed connection is not an answer.
        if (!waiting && err.code !== 'ECONNRESET') return report(json, { udid, result: 'failed', error: err.code }, `ERROR: ${udid}: ${err.message}`);
      }
      const elapsed = Math.round((Date.now() - started) / 1000);
      if (elapsed >= waitSeconds) {
        if (tty && told) process.stderr.write('\n');
        return report(json, { udid, result: 'pending', error: 'PairingDialogResponsePending' }, `ERROR: ${udid}: nobody answered the trust dialog within ${waitSeconds} s`);
      }
      if (tty) process.stderr.write(`\rPlease accept the trust dialog on ${udid} (${elapsed} s)`);
      else if (!told && !json) process.stderr.write(`Please accept the trust dialog on ${udid}\n`);
      told = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    lockdown.destroy();
  }
}

async function validate(usbmux: UsbmuxClient, device: UsbmuxDevice, json?: boolean): Promise<number> {
  const udid = device.serialNumber;
  const lockdown = await openLockdown(usbmux, device);
  try {
    await startSession(usbmux, lockdown, udid);
    await lockdown.stopSession();
    return report(json, { udid, result: 'valid' }, `SUCCESS: Validated pairing with device ${udid}`);
  } catch (err) {
    const code = err instanceof LockdownError ? err.code : 'NoPairRecord';
    return report(json, { udid, result: 'invalid', error: code }, `ERROR: ${udid}: ${(err as Error).message}`);
  } finally {
    lockdown.destroy();
  }
}

async function unpair(usbmux: UsbmuxClient, device: UsbmuxDevice, json?: boolean): Promise<number> {
  const udid = device.serialNumber;
  const record = await readRecord(usbmux, udid);
  if (!record || typeof record.HostID !== 'string') {
    return report(json, { udid, result: 'failed', error: 'NoPairRecord' }, `ERROR: no pair record for ${udid}`);
  }
  const lockdown = await openLockdown(usbmux, device);
  try {
    await lockdown.request({ Request: 'Unpair', PairRecord: { HostID: record.HostID } });
  } catch (err) {
    // A phone that already forgot us: the record still goes.
    if (!(err instanceof LockdownError) || err.code !== 'InvalidHostID') throw err;
  } finally {
    lockdown.destroy();
  }
  await usbmux.deletePairRecord(udid);
  return report(json, { udid, result: 'unpaired' }, `SUCCESS: Unpaired with device ${udid}`);
}

export type PairingVerb = 'pair' | 'validate' | 'unpair';

export async function runPairing(verb: PairingVerb, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      wait: { type: 'string' },
      json: { type: 'boolean' },
      socket: { type: 'string' },
      keylog: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(PAIRING_HELP);
    return 0;
  }
  const wait = values.wait === undefined ? 120 : Number(values.wait);
  if (!(wait >= 0)) throw new Error(`--wait needs seconds, not '${values.wait}'`);
  const usbmux = usbmuxClient(values);
  const device = await findDevice(usbmux, positionals[0]);
  if (verb === 'pair') return pair(usbmux, device, wait, values.json);
  if (verb === 'validate') return validate(usbmux, device, values.json);
  return unpair(usbmux, device, values.json);
}
