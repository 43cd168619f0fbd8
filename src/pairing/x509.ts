// The few X.509 v3 certificates a pair record holds, encoded in DER here and
// signed by node's crypto (OpenSSL). node-forge made them before, signing
// with its JavaScript RSA: 55-100 ms per certificate on an idle machine,
// three per pair record, many seconds on the lab's emulated CPU; OpenSSL signs
// in 1-2 ms. The bytes are forge's: the same field order and encodings
// (UTCTime before 2050, GeneralizedTime after, seconds only; BOOLEAN 0xFF;
// empty names; CRLF PEM in 64-column lines). test/pair-certificates.test.ts
// compares them with forge's, byte for byte, for the same keys and dates.
import { createHash, sign, type KeyObject } from 'node:crypto';

export interface CertificateSpec {
  /** The certified key. */
  publicKey: KeyObject;
  /** The issuer's key (the root's for all three; the root signs itself). */
  signer: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** Hex, as forge took it: '01'. */
  serialNumber: string;
  kind: 'root' | 'host' | 'device';
}

const TAG = { boolean: 0x01, integer: 0x02, bitString: 0x03, octetString: 0x04, null: 0x05, oid: 0x06, utcTime: 0x17, generalizedTime: 0x18, sequence: 0x30 };

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

const sequence = (...items: Buffer[]) => tlv(TAG.sequence, Buffer.concat(items));
/** [n] EXPLICIT, constructed. */
const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const base128 = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift(0x80 | (v & 0x7f));
    out.push(...base128);
  }
  return tlv(TAG.oid, Buffer.from(out));
}

const OID = {
  sha256WithRsa: '1.2.840.113549.1.1.11',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyIdentifier: '2.5.29.14',
};

const TRUE = tlv(TAG.boolean, Buffer.from([0xff]));
const SIGNATURE_ALGORITHM = sequence(oid(OID.sha256WithRsa), tlv(TAG.null, Buffer.alloc(0)));
const EMPTY_NAME = sequence();

const two = (n: number) => String(n).padStart(2, '0');

/** UTCTime from 1950 to 2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5); whole seconds, Z. */
function time(date: Date): Buffer {
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(TAG.utcTime, Buffer.from(`${String(year).slice(2)}${rest}`, 'latin1'));
  return tlv(TAG.generalizedTime, Buffer.from(`${year}${rest}`, 'latin1'));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [TRUE] : []), tlv(TAG.octetString, value));
}

function extensions(spec: CertificateSpec): Buffer {
  if (spec.kind === 'root') return sequence(extension(OID.basicConstraints, true, sequence(TRUE)));
  // digitalSignature | keyEncipherment: the first byte's top and third bits, 5 unused.
  const list = [
    extension(OID.basicConstraints, true, sequence()),
    extension(OID.keyUsage, true, tlv(TAG.bitString, Buffer.from([5, 0xa0]))),
  ];
  if (spec.kind === 'device') {
    // SHA-1 of the RSAPublicKey, RFC 5280 4.2.1.2 method (1).
    const rsaPublicKey = spec.publicKey.export({ type: 'pkcs1', format: 'der' });
    list.push(extension(OID.subjectKeyIdentifier, false, tlv(TAG.octetString, createHash('sha1').update(rsaPublicKey).digest())));
  }
  return sequence(...list);
}

/** The DER of a signed certificate. */
export function certificateDer(spec: CertificateSpec): Buffer {
  const tbs = sequence(
    explicit(0, tlv(TAG.integer, Buffer.from([2]))), // v3
    tlv(TAG.integer, Buffer.from(spec.serialNumber, 'hex')),
    SIGNATURE_ALGORITHM,
    EMPTY_NAME,
    sequence(time(spec.notBefore), time(spec.notAfter)),
    EMPTY_NAME,
    spec.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, extensions(spec)),
  );
  const signature = sign('sha256', tbs, spec.signer); // RSASSA-PKCS1-v1_5: deterministic
  return sequence(tbs, SIGNATURE_ALGORITHM, tlv(TAG.bitString, Buffer.concat([Buffer.from([0]), signature])));
}

/** PEM as forge wrote it: CRLF line ends, 64 columns. */
export function certificatePem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\r\n${lines.join('\r\n')}\r\n-----END CERTIFICATE-----\r\n`;
}
