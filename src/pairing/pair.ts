// Pairing with a phone over an open lockdown connection: read its public key,
// make the certificates (once; a retry after PairingDialogResponsePending
// reuses them), send Pair, and complete the record with the EscrowBag the
// phone returns. Errors are the LockdownError the phone answered with.
import { LockdownError, LOCKDOWN_PROTOCOL } from '../lockdown/errors.js';
import type { LockdownClient } from '../lockdown/client.js';
import { generatePairRecord, pairRequestRecord } from './certificates.js';
import type { PlistDict } from '../protocol/plist-codec.js';

/** A pair record for this phone, not yet accepted by it. */
export async function preparePairRecord(lockdown: LockdownClient, systemBuid: string): Promise<PlistDict> {
  const key = await lockdown.getValue('DevicePublicKey');
  if (!(key instanceof Uint8Array)) throw new LockdownError('DevicePublicKey is not data', LOCKDOWN_PROTOCOL, 'GetValue');
  let wifi: string | undefined;
  try {
    const v = await lockdown.getValue('WiFiAddress');
    if (typeof v === 'string') wifi = v;
  } catch (err) {
    if (!(err instanceof LockdownError) || err.code === 'ETIMEDOUT' || err.code === 'ECONNRESET') throw err;
  }
  return generatePairRecord({ devicePublicKeyPem: Buffer.from(key).toString('utf8'), systemBuid, wifiMacAddress: wifi });
}

/** Sends Pair; resolves with the full record (EscrowBag included) once the phone accepts it. */
export async function pairDevice(lockdown: LockdownClient, record: PlistDict): Promise<PlistDict> {
  const reply = await lockdown.request({
    Request: 'Pair',
    PairRecord: pairRequestRecord(record),
    ProtocolVersion: '2',
    PairingOptions: { ExtendedPairingErrors: true },
  });
  const escrow = reply.EscrowBag;
  return escrow instanceof Uint8Array ? { ...record, EscrowBag: Buffer.from(escrow) } : { ...record };
}
