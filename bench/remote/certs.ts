// Certificates for remote usbmux's mutual TLS, made with Debian's openssl
// command (ECDSA P-256, fast to make and to verify): a fleet CA and a
// certificate per host it signs, a second CA that signs nothing we trust,
// and an expired certificate from the right CA. The remote benchmark and
// test/remote.test.ts both use them.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface Identity {
  cert: string;
  key: string;
}

export interface RemoteCerts {
  ca: string;
  /** A certificate the CA signed, for each name asked for. */
  hosts: Record<string, Identity>;
  /** Signed by another CA. */
  wrongCa: Identity;
  /** The CA's, but its notAfter is a day ago. */
  expired: Identity;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await promisify(execFile)('openssl', args, { cwd: dir, timeout: 30_000 });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function selfSigned(dir: string, name: string): Promise<void> {
  await openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`]);
}

/** `days` -1 makes one that expired yesterday (notBefore now, notAfter a day ago). */
async function signed(dir: string, name: string, ca: string, days: number): Promise<Identity> {
  await openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', String(days), '-out', `${name}.pem`]);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

export async function makeRemoteCerts(dir: string, hostNames: string[]): Promise<RemoteCerts> {
  await selfSigned(dir, 'fleet-ca');
  await selfSigned(dir, 'other-ca');
  const hosts: Record<string, Identity> = {};
  for (const name of hostNames) hosts[name] = await signed(dir, name, 'fleet-ca', 2);
  return {
    ca: join(dir, 'fleet-ca.pem'),
    hosts,
    wrongCa: await signed(dir, 'stranger', 'other-ca', 2),
    expired: await signed(dir, 'expired-host', 'fleet-ca', -1),
  };
}
