// The mutual-TLS identity of remote usbmux (docs/remote.md): this end's
// certificate and key, and the CA every peer's certificate must chain to.
// The same PEM goes to node's tls (a remote's Listen link and forwarded
// requests) and to the data plane (each Connect's splice, and the listener).
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';

import type { RemoteTlsPem } from '../native/addon.js';

export type { RemoteTlsPem };

/** A PEM file's cap where it is read: the native side refuses more, too (addon_remote.cc). */
export const MAX_PEM_BYTES = 256 * 1024;

export interface RemoteTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

async function readPem(path: string, what: string): Promise<string> {
  const bytes = await readFile(path);
  if (bytes.length === 0 || bytes.length > MAX_PEM_BYTES) {
    throw new Error(`${what} ${path}: ${bytes.length} bytes (1 to ${MAX_PEM_BYTES})`);
  }
  const text = bytes.toString('utf8');
  if (!text.includes('-----BEGIN ')) throw new Error(`${what} ${path} is not PEM`);
  return text;
}

export async function loadRemoteTls(files: RemoteTlsFiles): Promise<RemoteTlsPem> {
  return {
    caPem: await readPem(files.ca, 'the CA file'),
    certPem: await readPem(files.cert, 'the certificate'),
    keyPem: await readPem(files.key, 'the private key'),
  };
}

/** PEM handed over in a request (AddInstance's TLS keys): the same caps. */
export function checkPem(text: unknown, what: string): string {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_PEM_BYTES || !text.includes('-----BEGIN ')) {
    throw new Error(`${what} is not PEM of 1 to ${MAX_PEM_BYTES} bytes`);
  }
  return text;
}

/**
 * node's tls, as the data plane does it: TLS 1.3, the peer's chain checked
 * against the CA, names not checked (the fleet's CA alone says who belongs).
 */
export function nodeTlsOptions(tls: RemoteTlsPem): ConnectionOptions {
  return {
    ca: tls.caPem,
    cert: tls.certPem,
    key: tls.keyPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    rejectUnauthorized: true,
    checkServerIdentity: () => undefined,
  };
}
