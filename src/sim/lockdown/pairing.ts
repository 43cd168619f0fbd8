// The device side of pairing: checking the PairRecord a host sends with Pair
// (reference §1.3 Pair, §1.6 and §1.9 item 4) and keeping the accepted ones,
// keyed by HostID, in memory and optionally as XML plists in a state dir.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import forge from 'node-forge';

import { isPlistDict, parsePlist, toXml, type PlistDict, type PlistValue } from '../../protocol/plist-codec.js';

/** What the device keeps of a host's pair record (no private keys). */
export interface StoredPairRecord {
  HostID: string;
  SystemBUID: string;
  HostCertificate: Uint8Array;
  RootCertificate: Uint8Array;
  DeviceCertificate: Uint8Array;
  EscrowBag: Uint8Array;
  WiFiMACAddress?: string;
}

export type PairCheck = { ok: true; record: Omit<StoredPairRecord, 'EscrowBag'> } | { ok: false; error: string; why: string };

function pemBytes(v: PlistValue | undefined): Uint8Array | undefined {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  return undefined;
}

function parseCert(bytes: Uint8Array): forge.pki.Certificate {
  // Hosts send PEM text; tolerate a trailing NUL (C strings) and DER.
  const text = Buffer.from(bytes).toString('latin1').replace(/\0+$/, '');
  if (text.includes('-----BEGIN')) return forge.pki.certificateFromPem(text);
  return forge.pki.certificateFromAsn1(forge.asn1.fromDer(text));
}

/** The same RSA key (modulus and exponent)? */
function sameRsaKey(a: forge.pki.PublicKey, b: forge.pki.rsa.PublicKey): boolean {
  const ka = a as forge.pki.rsa.PublicKey;
  return !!ka.n && !!ka.e && ka.n.compareTo(b.n) === 0 && ka.e.compareTo(b.e) === 0;
}

/**
 * Checks a Pair/ValidatePair PairRecord: the certificates and IDs are
 * present, the host certificate verifies under the root certificate, and the
 * device certificate carries this device's public key.
 */
export function checkPairRecord(value: PlistValue | undefined, devicePublicKeyPem: string): PairCheck {
  const bad = (why: string): PairCheck => ({ ok: false, error: 'InvalidPairRecord', why });
  if (value === undefined) return { ok: false, error: 'MissingPairRecord', why: 'no PairRecord' };
  if (!isPlistDict(value)) return bad('PairRecord is not a dict');
  const host = pemBytes(value.HostCertificate);
  const root = pemBytes(value.RootCertificate);
  const device = pemBytes(value.DeviceCertificate);
  if (!host || !root || !device) return bad('a certificate is missing');
  if (typeof value.HostID !== 'string' || value.HostID === '') return bad('HostID is missing');
  if (typeof value.SystemBUID !== 'string' || value.SystemBUID === '') return bad('SystemBUID is missing');
  let hostCert: forge.pki.Certificate;
  let rootCert: forge.pki.Certificate;
  let deviceCert: forge.pki.Certificate;
  try {
    hostCert = parseCert(host);
    rootCert = parseCert(root);
    deviceCert = parseCert(device);
  } catch (err) {
    return bad(`a certificate does not parse: ${(err as Error).message}`);
  }
  let signed = false;
  try {
    signed = rootCert.verify(hostCert);
  } catch {
    signed = false;
  }
  if (!signed) return bad('HostCertificate is not signed by RootCertificate');
  let deviceKey: forge.pki.rsa.PublicKey;
  try {
    deviceKey = forge.pki.publicKeyFromPem(devicePublicKeyPem);
  } catch (err) {
    return bad(`device key: ${(err as Error).message}`);
  }
  if (!sameRsaKey(deviceCert.publicKey, deviceKey)) return bad("DeviceCertificate's key is not this device's key");
  const record: Omit<StoredPairRecord, 'EscrowBag'> = {
    HostID: value.HostID,
    SystemBUID: value.SystemBUID,
    HostCertificate: host,
    RootCertificate: root,
    DeviceCertificate: device,
  };
  if (typeof value.WiFiMACAddress === 'string') record.WiFiMACAddress = value.WiFiMACAddress;
  return { ok: true, record };
}

const RECORD_FILE = /^([0-9A-Za-z-]+)\.plist$/;

/** HostID -> accepted pair record; mirrored to `dir` when one is given. */
export class DevicePairStore {
  private readonly records = new Map<string, StoredPairRecord>();

  constructor(readonly dir?: string) {
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir)) {
      if (!RECORD_FILE.test(name)) continue;
      try {
        const v = parsePlist(readFileSync(join(dir, name)));
        if (isPlistDict(v) && typeof v.HostID === 'string') this.records.set(v.HostID, v as unknown as StoredPairRecord);
      } catch {
        // a damaged file is as good as no pairing
      }
    }
  }

  get size(): number {
    return this.records.size;
  }

  has(hostId: string): boolean {
    return this.records.has(hostId);
  }

  get(hostId: string): StoredPairRecord | undefined {
    return this.records.get(hostId);
  }

  hostIds(): string[] {
    return [...this.records.keys()];
  }

  set(record: StoredPairRecord): void {
    this.records.set(record.HostID, record);
    if (this.dir && RECORD_FILE.test(`${record.HostID}.plist`)) {
      writeFileSync(join(this.dir, `${record.HostID}.plist`), toXml(record as unknown as PlistDict), { mode: 0o600 });
    }
  }

  delete(hostId: string): boolean {
    const had = this.records.delete(hostId);
    if (this.dir && RECORD_FILE.test(`${hostId}.plist`)) rmSync(join(this.dir, `${hostId}.plist`), { force: true });
    return had;
  }

  clear(): void {
    for (const id of this.hostIds()) this.delete(id);
  }
}
