// A simulated phone's state directory, so that it is the same phone after a
// restart: its serial (hence UDID), the lockdown values it was given, its
// RSA device key, and (in pair-records/) the hosts it trusts. A real phone
// keeps all of these across reboots; a sim that forgot them would make every
// host re-pair, which hides bugs in pair-record handling.
//
//   <dir>/identity.json      { serial, identity: SimIdentityOptions }
//   <dir>/device-key.pem     PKCS#8 private key, mode 0600
//   <dir>/pair-records/      one <HostID>.plist per trusted host
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { SimIdentityOptions } from './identity.js';

export interface SimState {
  serial: string;
  identity: SimIdentityOptions;
  deviceKey: KeyObject;
  /** Where lockdownd keeps the pair records of trusted hosts. */
  pairRecordDir: string;
}

const IDENTITY_FILE = 'identity.json';
const KEY_FILE = 'device-key.pem';
const IDENTITY_KEYS: ReadonlyArray<keyof SimIdentityOptions> = [
  'productType',
  'productVersion',
  'buildVersion',
  'hardwareModel',
  'deviceName',
  'deviceClass',
];

const UDID_40 = /^[0-9a-f]{40}$/i;
const UDID_25 = /^[0-9A-F]{8}-[0-9A-F]{16}$/i;

/** The USB serial a phone with this UDID reports: the UDID without its dash. */
export function udidToSerial(udid: string): string {
  if (UDID_40.test(udid)) return udid.toLowerCase();
  if (UDID_25.test(udid)) return udid.replace('-', '').toUpperCase();
  throw new Error(`not a UDID: '${udid}' (40 hex digits, or 8 and 16 hex digits with a dash)`);
}

function writePrivate(path: string, data: string): void {
  const temp = `${path}.tmp-${process.pid}`;
  writeFileSync(temp, data, { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}

function readIdentityFile(dir: string): { serial: string; identity: SimIdentityOptions } | undefined {
  const path = join(dir, IDENTITY_FILE);
  if (!existsSync(path)) return undefined;
  const raw = JSON.parse(readFileSync(path, 'utf8')) as { serial?: unknown; identity?: Record<string, unknown> };
  if (typeof raw.serial !== 'string' || raw.serial.length === 0) throw new Error(`${path}: no serial`);
  const identity: SimIdentityOptions = {};
  for (const k of IDENTITY_KEYS) {
    const v = raw.identity?.[k];
    if (typeof v === 'string') identity[k] = v;
  }
  return { serial: raw.serial, identity };
}

/**
 * Opens (creating on first use) the state in `dir`. `serial` and `identity`
 * come from the command line: a serial that differs from the stored one is
 * an error (the directory belongs to another phone), while identity values
 * replace the stored ones, as an iOS update would.
 */
export function openSimState(
  dir: string,
  wanted: { serial?: string; identity?: SimIdentityOptions; newSerial: () => string },
): SimState {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stored = readIdentityFile(dir);
  if (stored && wanted.serial && stored.serial !== wanted.serial) {
    throw new Error(`state directory ${dir} belongs to the phone with serial ${stored.serial}, not ${wanted.serial}`);
  }
  const serial = stored?.serial ?? wanted.serial ?? wanted.newSerial();
  const identity: SimIdentityOptions = { ...stored?.identity };
  for (const k of IDENTITY_KEYS) {
    const v = wanted.identity?.[k];
    if (v !== undefined) identity[k] = v;
  }
  if (!stored || JSON.stringify(stored.identity) !== JSON.stringify(identity)) {
    writePrivate(join(dir, IDENTITY_FILE), `${JSON.stringify({ serial, identity }, null, 2)}\n`);
  }

  const keyPath = join(dir, KEY_FILE);
  let deviceKey: KeyObject;
  if (existsSync(keyPath)) {
    deviceKey = createPrivateKey(readFileSync(keyPath));
  } else {
    deviceKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    writePrivate(keyPath, deviceKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }
  const pairRecordDir = join(dir, 'pair-records');
  mkdirSync(pairRecordDir, { recursive: true, mode: 0o700 });
  return { serial, identity, deviceKey, pairRecordDir };
}
