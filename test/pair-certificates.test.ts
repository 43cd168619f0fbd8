// The pair record's certificates, now DER laid out by src/pairing/x509.ts and
// signed by OpenSSL, against node-forge (which made them before): for the same
// keys and dates the PEM is the same, byte for byte. RSASSA-PKCS1-v1_5 is
// deterministic, so the signatures must match too. And what OpenSSL reads
// back: the chain verifies, the extensions are the ones a phone expects.
import t from 'tap';
import forge from 'node-forge';
import { createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';

import { generatePairRecord } from '../src/pairing/certificates.js';
import { certificateDer, certificatePem, type CertificateSpec } from '../src/pairing/x509.js';

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const root = rsa();
const host = rsa();
const device = rsa();

/** What certificates.ts made with forge until x509.ts replaced it. */
function forgeCertificate(publicKey: KeyObject, signer: KeyObject, notBefore: Date, notAfter: Date, kind: CertificateSpec['kind']): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  cert.serialNumber = '01';
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
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
  cert.sign(forge.pki.privateKeyFromPem(signer.export({ type: 'pkcs1', format: 'pem' }).toString()), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

const ours = (publicKey: KeyObject, notBefore: Date, notAfter: Date, kind: CertificateSpec['kind']) =>
  certificatePem(certificateDer({ publicKey, signer: root.privateKey, notBefore, notAfter, serialNumber: '01', kind }));

t.test('byte for byte what forge made, for each kind of certificate', async (t) => {
  const notBefore = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
  const notAfter = new Date(notBefore.getTime() + 10 * 365 * 86_400_000);
  for (const [kind, key] of [['root', root.publicKey], ['host', host.publicKey], ['device', device.publicKey]] as const) {
    t.equal(ours(key, notBefore, notAfter, kind), forgeCertificate(key, root.privateKey, notBefore, notAfter, kind), kind);
  }
});

t.test('dates: UTCTime until 2049, GeneralizedTime from 2050, as forge writes them', async (t) => {
  const cases: Array<[Date, Date]> = [
    [new Date(Date.UTC(2049, 11, 31, 23, 59, 59)), new Date(Date.UTC(2050, 0, 1, 0, 0, 0))],
    [new Date(Date.UTC(1999, 8, 9, 1, 2, 3)), new Date(Date.UTC(2109, 8, 9, 1, 2, 3))],
  ];
  for (const [notBefore, notAfter] of cases) {
    t.equal(
      ours(host.publicKey, notBefore, notAfter, 'host'),
      forgeCertificate(host.publicKey, root.privateKey, notBefore, notAfter, 'host'),
      `${notBefore.toISOString()} .. ${notAfter.toISOString()}`,
    );
  }
});

t.test('a generated record: OpenSSL verifies the chain and reads the extensions', async (t) => {
  const record = await generatePairRecord({
    devicePublicKeyPem: device.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    systemBuid: 'BUID',
  });
  const read = (name: string) => new X509Certificate(Buffer.from(record[name] as Uint8Array));
  const rootCert = read('RootCertificate');
  const hostCert = read('HostCertificate');
  const deviceCert = read('DeviceCertificate');
  t.ok(rootCert.verify(rootCert.publicKey), 'the root signs itself');
  t.ok(hostCert.verify(rootCert.publicKey), 'the root signs the host certificate');
  t.ok(deviceCert.verify(rootCert.publicKey), 'the root signs the device certificate');
  t.ok(rootCert.ca, 'the root is a CA');
  t.notOk(hostCert.ca, 'the host certificate is not');
  t.equal(
    deviceCert.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
    device.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
    "the device certificate carries the phone's key",
  );
  t.equal(rootCert.serialNumber, '01');
  t.notOk(hostCert.subject, 'empty subject');
  t.notOk(hostCert.issuer, 'empty issuer');
  const years = (Date.parse(hostCert.validTo) - Date.parse(hostCert.validFrom)) / (365 * 86_400_000);
  t.ok(years > 9.99 && years < 10.01, `ten years (${years.toFixed(3)})`);
  t.ok(hostCert.checkPrivateKey(createPrivateKey(Buffer.from(record.HostPrivateKey as Uint8Array))), 'HostPrivateKey belongs to HostCertificate');
  t.match(Buffer.from(record.HostPrivateKey as Uint8Array).toString(), /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
});

t.test('a DevicePublicKey that is not RSA is refused', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await t.rejects(generatePairRecord({ devicePublicKeyPem: ec, systemBuid: 'BUID' }), /not RSA/);
  await t.rejects(generatePairRecord({ devicePublicKeyPem: 'junk', systemBuid: 'BUID' }));
});
