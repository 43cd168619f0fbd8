// A host's side of pairing for tests that play the host against the
// simulated phone by hand: the project's own certificates
// (src/pairing/certificates.ts), cut into what a host sends with Pair and
// the credentials it presents in the session TLS.
import { generatePairRecord, hostCredentials, pairRequestRecord } from '../../src/pairing/certificates.js';
import type { PlistDict } from '../../src/protocol/plist-codec.js';

export const TEST_BUID = '7C7306A8-F205-4B75-933A-F86275817DD9';

export interface HostRecord {
  /** What Pair carries: the three certificates, HostID and SystemBUID. */
  record: PlistDict;
  hostKeyPem: string;
  hostCertPem: string;
}

/** A pair record for the phone whose DevicePublicKey is `devicePublicKeyPem`. */
export async function hostPairRecord(devicePublicKeyPem: string, hostId?: string): Promise<HostRecord> {
  const full = await generatePairRecord({ devicePublicKeyPem, systemBuid: TEST_BUID, hostId });
  const { cert, key } = hostCredentials(full);
  return { record: pairRequestRecord(full), hostKeyPem: key.toString('utf8'), hostCertPem: cert.toString('utf8') };
}
