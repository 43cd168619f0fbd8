// The certificates of a pair record, made as libimobiledevice (OpenSSL) and
// pymobiledevice3 make them (reference §1.6): RSA-2048 root and host keys,
// empty subject and issuer, serial 1, SHA-256, ten years from a minute ago;
// the root is a CA, the host and device certificates are signed by it, and
// the device certificate carries the phone's own public key. Node (OpenSSL)
// makes the keys and the signatures; x509.ts lays out the DER.
import { createPublicKey, generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

import type { PlistDict } from '../protocol/plist-codec.js';
import type { CertificateSpec } from './x509.js';

const generateRsa = promisify(generateKeyPair);
const TEN_YEARS_MS = 10 * 365 * 86_400_000;

export interface PairRecordInput {
  /** The phone's DevicePublicKey (PEM, PKCS#1 `RSA PUBLIC KEY` or SPKI). */
  devicePublicKeyPem: string;
  systemBuid: string;
  hostId?: string;
  wifiMacAddress?: string;
}

interface RsaKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  pkcs8: string;
}

/** Generated natively, off the main thread. */
async function newRsaKey(): Promise<RsaKey> {
  const { privateKey, publicKey } = await generateRsa('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  return { privateKey, publicKey, pkcs8: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

// RSA-2048 generation takes a second or more on a busy machine, and pairing
// waits on two keys. A phone's pair is made when its public key is in
// (generatePairRecord), as usbmuxd makes it: not at the daemon's start
// (there it competed with the start-up itself, seconds of the USB lab's
// emulated CPU, and a phone this host has paired never needs keys), and not
// ahead for the next phone. A spare pair made after each pairing cost
// 0.3-0.4 s of CPU on this host and 2.3 s in the lab in the five idle
// seconds after the first listing (issue 20), for a saving only the next
// pairing, which may never come, would see.
function newKeyPair(): Promise<[RsaKey, RsaKey]> {
  return Promise.all([newRsaKey(), newRsaKey()]);
}

function devicePublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`the DevicePublicKey is ${key.asymmetricKeyType}, not RSA`);
  return key;
}

/**
 * A complete host pair record for one phone, without EscrowBag (the Pair
 * reply brings it). Keys are PKCS#8 PEM, as OpenSSL writes them.
 */
export async function generatePairRecord(input: PairRecordInput): Promise<PlistDict> {
  const device = devicePublicKey(input.devicePublicKeyPem);
  // Pairing only: the daemon's start (hostCredentials) does not load it.
  const { certificateDer, certificatePem } = await import('./x509.js');
  const [root, host] = await newKeyPair();
  const now = Date.now();
  const certificate = (publicKey: KeyObject, kind: CertificateSpec['kind']) =>
    Buffer.from(certificatePem(certificateDer({
      publicKey,
      signer: root.privateKey,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + TEN_YEARS_MS),
      serialNumber: '01',
      kind,
    })));
  return {
    DeviceCertificate: certificate(device, 'device'),
    HostCertificate: certificate(host.publicKey, 'host'),
    HostPrivateKey: Buffer.from(host.pkcs8),
    RootCertificate: certificate(root.publicKey, 'root'),
    RootPrivateKey: Buffer.from(root.pkcs8),
    HostID: input.hostId ?? randomUUID().toUpperCase(),
    SystemBUID: input.systemBuid,
    ...(input.wifiMacAddress ? { WiFiMACAddress: input.wifiMacAddress } : {}),
  };
}

/** The part of the record a host sends with Pair (no private keys). */
export function pairRequestRecord(record: PlistDict): PlistDict {
  const { DeviceCertificate, HostCertificate, RootCertificate, HostID, SystemBUID } = record;
  return { DeviceCertificate, HostCertificate, RootCertificate, HostID, SystemBUID } as PlistDict;
}

/** The host's TLS credentials from a stored record (HostCertificate + HostPrivateKey). */
export function hostCredentials(record: PlistDict): { cert: Buffer; key: Buffer } {
  const cert = record.HostCertificate;
  const key = record.HostPrivateKey;
  if (!(cert instanceof Uint8Array) || !(key instanceof Uint8Array)) {
    throw new Error('the pair record has no HostCertificate / HostPrivateKey');
  }
  return { cert: Buffer.from(cert), key: Buffer.from(key) };
}
