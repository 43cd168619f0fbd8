// The certificates of a pair record, made as libimobiledevice (OpenSSL) and
// pymobiledevice3 make them (reference §1.6): RSA-2048 root and host keys,
// empty subject and issuer, serial 1, SHA-256, ten years from a minute ago;
// the root is a CA, the host and device certificates are signed by it, and
// the device certificate carries the phone's own public key.
import { generateKeyPair, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';

import forge from 'node-forge';

import type { PlistDict } from '../protocol/plist-codec.js';

const generateRsa = promisify(generateKeyPair);
const TEN_YEARS_MS = 10 * 365 * 86_400_000;

export interface PairRecordInput {
  /** The phone's DevicePublicKey (PEM, PKCS#1 `RSA PUBLIC KEY` or SPKI). */
  devicePublicKeyPem: string;
  systemBuid: string;
  hostId?: string;
  wifiMacAddress?: string;
}

type RsaKey = Awaited<ReturnType<typeof newRsaKey>>;

/** Node generates the keys (native, off the main thread); forge only builds the X.509. */
async function newRsaKey(): Promise<{ privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pkcs8: string }> {
  const { privateKey } = await generateRsa('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const priv = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  return { privateKey: priv, publicKey: forge.pki.setRsaPublicKey(priv.n, priv.e), pkcs8 };
}

// RSA-2048 generation takes a second or more on a busy machine, and pairing
// waits on two keys. One spare pair is made ahead of time, so a phone that
// is plugged in meets its Trust dialog without that wait.
let spare: Promise<[RsaKey, RsaKey]> | undefined;

function takeKeys(): Promise<[RsaKey, RsaKey]> {
  const keys = spare ?? Promise.all([newRsaKey(), newRsaKey()]);
  spare = Promise.all([newRsaKey(), newRsaKey()]);
  spare.catch(() => (spare = undefined));
  return keys;
}

/** Starts making the spare key pair (the daemon calls this at start). */
export function prepareKeys(): void {
  spare ??= Promise.all([newRsaKey(), newRsaKey()]);
}

function certificate(
  publicKey: forge.pki.PublicKey,
  signer: forge.pki.rsa.PrivateKey,
  kind: 'root' | 'host' | 'device',
): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = '01';
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60_000);
  cert.validity.notAfter = new Date(now + TEN_YEARS_MS);
  cert.setSubject([]);
  cert.setIssuer([]);
  const extensions: object[] =
    kind === 'root'
      ? [{ name: 'basicConstraints', cA: true, critical: true }]
      : [
          { name: 'basicConstraints', cA: false, critical: true },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        ];
  if (kind === 'device') extensions.push({ name: 'subjectKeyIdentifier' });
  cert.setExtensions(extensions);
  cert.sign(signer, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/**
 * A complete host pair record for one phone, without EscrowBag (the Pair
 * reply brings it). Keys are PKCS#8 PEM, as OpenSSL writes them.
 */
export async function generatePairRecord(input: PairRecordInput): Promise<PlistDict> {
  const [root, host] = await takeKeys();
  const devicePublicKey = forge.pki.publicKeyFromPem(input.devicePublicKeyPem);
  return {
    DeviceCertificate: Buffer.from(certificate(devicePublicKey, root.privateKey, 'device')),
    HostCertificate: Buffer.from(certificate(host.publicKey, root.privateKey, 'host')),
    HostPrivateKey: Buffer.from(host.pkcs8),
    RootCertificate: Buffer.from(certificate(root.publicKey, root.privateKey, 'root')),
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
