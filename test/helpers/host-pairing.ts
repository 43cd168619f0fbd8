// A host's side of pairing for tests that play the host against the
// simulated phone: a root, host and device certificate made as
// libimobiledevice and pymobiledevice3 make them (reference §1.6), and the
// pair record a host sends with Pair.
import { generateKeyPairSync, randomUUID } from 'node:crypto';

import forge from 'node-forge';

import type { PlistDict } from '../../src/pairing/plist-codec.js';

export const TEST_BUID = '7C7306A8-F205-4B75-933A-F86275817DD9';

export interface HostRecord {
  record: PlistDict;
  hostKeyPem: string;
  hostCertPem: string;
}

function rsaKey(): forge.pki.rsa.KeyPair {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const priv = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  return { privateKey: priv, publicKey: forge.pki.setRsaPublicKey(priv.n, priv.e) };
}

export function makeCert(publicKey: forge.pki.PublicKey, signer: forge.pki.rsa.PrivateKey, ca: boolean): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86_400_000);
  cert.setSubject([]);
  cert.setIssuer([]);
  cert.setExtensions(
    ca
      ? [{ name: 'basicConstraints', cA: true, critical: true }]
      : [
          { name: 'basicConstraints', cA: false, critical: true },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        ],
  );
  cert.sign(signer, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** A full pair record for the phone whose DevicePublicKey is `devicePublicKeyPem`. */
export function hostPairRecord(devicePublicKeyPem: string, hostId = randomUUID().toUpperCase()): HostRecord {
  const root = rsaKey();
  const host = rsaKey();
  const hostCertPem = makeCert(host.publicKey, root.privateKey, false);
  const deviceCert = makeCert(forge.pki.publicKeyFromPem(devicePublicKeyPem), root.privateKey, false);
  return {
    record: {
      DeviceCertificate: Buffer.from(deviceCert),
      HostCertificate: Buffer.from(hostCertPem),
      RootCertificate: Buffer.from(makeCert(root.publicKey, root.privateKey, true)),
      HostID: hostId,
      SystemBUID: TEST_BUID,
    },
    hostKeyPem: forge.pki.privateKeyToPem(host.privateKey),
    hostCertPem,
  };
}
