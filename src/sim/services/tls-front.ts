// Service TLS (StartService's EnableServiceSSL, reference §1.7.3): the host
// starts TLS as the first thing on the service connection, and the phone
// answers as the server with the DeviceCertificate of the host that asked
// for the service. This front does the TLS and hands the plaintext to the
// service's own listener, so any service can be offered with TLS.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, createSecureContext } from 'node:tls';

import { SESSION_TLS } from '../lockdown/values.js';
import { listenService, type ServiceAddress } from './listen.js';

export interface TlsIdentity {
  key: string;
  cert: Buffer;
}

function connectBackend(backend: string | number): Socket {
  return typeof backend === 'string' ? createConnection(backend) : createConnection(backend, '127.0.0.1');
}

/**
 * A listener that wraps each connection in server-side TLS with the identity
 * `identityFor()` returns at accept time (none: the connection is refused),
 * then pipes the plaintext both ways to `backend`.
 */
export async function startTlsFront(
  backend: string | number,
  identityFor: () => TlsIdentity | undefined,
  at?: ServiceAddress,
): Promise<{ server: Server; address: string | number }> {
  const server = createServer((raw) => {
    raw.on('error', () => raw.destroy());
    const identity = identityFor();
    if (!identity) return raw.destroy();
    const secureContext = createSecureContext({ ...SESSION_TLS, key: identity.key, cert: identity.cert });
    const secure = new TLSSocket(raw, { isServer: true, secureContext, requestCert: true, rejectUnauthorized: false });
    secure.on('error', () => {
      secure.destroy();
      raw.destroy();
    });
    secure.once('secure', () => {
      const plain = connectBackend(backend);
      plain.on('error', () => secure.destroy());
      secure.pipe(plain).pipe(secure);
      secure.on('close', () => plain.destroy());
      plain.on('close', () => secure.destroy());
    });
  });
  return { server, address: await listenService(server, at) };
}
