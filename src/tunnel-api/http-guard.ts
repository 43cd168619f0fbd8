// The guards both tunnel APIs share. They listen on loopback only
// (api-address.ts), but a web page in a browser on this machine can reach
// loopback too: a page's fetch, form or <img> carries an Origin or a
// Sec-Fetch-Site header, and a DNS-rebinding page reaches us under its own
// host name. So a request is refused (403) unless its Host is the address we
// listen on, and refused if it carries an Origin, or a Sec-Fetch-Site other
// than `none` (a person typing the URL). The tools these APIs serve
// (pymobiledevice3's requests and websockets, go-ios's net/http) send none
// of those headers. Every size and time a client controls is capped here,
// before a route sees the request; a malformed request is answered 400 by
// node's parser and the connection closed, and nothing else is touched.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';

import type { Logger } from '../util/log.js';
import type { ApiAddress } from './api-address.js';

/** Request line and headers together (node's maxHeaderSize); over it node answers 431. */
export const MAX_HEADER_BYTES = 8 * 1024;
/** The longest request target: a route, a UDID and a port need under 200 characters. */
export const MAX_URL_LENGTH = 2048;
/** Requests on one keep-alive connection; then node answers 503 and closes it. */
export const MAX_REQUESTS_PER_CONNECTION = 100;
/** Connections at once (websocket bridges included); node closes those past it at once. */
export const MAX_CONNECTIONS = 64;
/**
 * Time for the request line and headers (slowloris). node starts this clock
 * when the connection is accepted, so a connection that sends nothing at
 * all is answered 408 and closed after it too.
 */
export const HEADERS_TIMEOUT_MS = 10_000;
/** Time to receive a whole request (answering it, a tunnel start, may take longer). */
export const REQUEST_TIMEOUT_MS = 15_000;
/** An idle keep-alive connection is closed after this. */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often node checks the header and request deadlines (its default, 30 s, would let them slip by that much). */
const DEADLINE_CHECK_INTERVAL_MS = 1_000;

export interface Refusal {
  status: number;
  why: string;
}

/** `Host` values that name this listener: the literal address, and localhost, with the port. */
export function acceptedHosts(bound: ApiAddress): Set<string> {
  const literal = isIPv6(bound.host) ? `[${bound.host}]` : bound.host;
  return new Set([`${literal}:${bound.port}`, `localhost:${bound.port}`]);
}

function carriesBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Why this request is refused, or undefined. Checked on every request and
 * on the websocket upgrade alike.
 */
export function refusal(req: IncomingMessage, hosts: ReadonlySet<string>): Refusal | undefined {
  const url = req.url ?? '';
  // `GET http://other/ HTTP/1.1` (absolute form) is a proxy's request, not ours.
  if (!url.startsWith('/')) return { status: 400, why: 'the request target is not a path' };
  if (url.length > MAX_URL_LENGTH) return { status: 414, why: `the request target is over ${MAX_URL_LENGTH} characters` };
  const host = req.headers.host?.toLowerCase();
  if (host === undefined || !hosts.has(host)) {
    return { status: 403, why: `Host must be one of ${[...hosts].join(', ')}` };
  }
  if (req.headers.origin !== undefined) return { status: 403, why: 'requests from web pages (with an Origin header) are refused' };
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'none') return { status: 403, why: 'requests from web pages (Sec-Fetch-Site) are refused' };
  // No route takes a body; refusing one means none is read or drained.
  if (carriesBody(req)) return { status: 413, why: 'these routes take no request body' };
  return undefined;
}

export function sendRefusal(res: ServerResponse, r: Refusal): void {
  const body = `${r.why}\n`;
  res.writeHead(r.status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    // A refused body is never read: the connection cannot carry another request.
    ...(r.status === 413 ? { Connection: 'close' } : {}),
  });
  res.end(body);
}

/** A whole HTTP response written on a socket that node's HTTP layer no longer owns (an upgrade). */
export function refuseUpgrade(socket: Duplex, r: Refusal): void {
  const body = `${r.why}\n`;
  const head = [
    `HTTP/1.1 ${r.status} ${http.STATUS_CODES[r.status] ?? ''}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  socket.once('finish', () => socket.destroy());
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface GuardedServerOptions {
  /** Names the API in log lines. */
  name: string;
  log: Logger;
  route: RouteHandler;
  /** Websocket upgrades, after the guards passed; without it an upgrade is a plain request. */
  upgrade?: UpgradeHandler;
}

export interface GuardedServer {
  server: http.Server;
  /** Listens on a loopback address; rejects with the listen error (EADDRINUSE...). */
  listen(at: ApiAddress): Promise<ApiAddress>;
  close(): Promise<void>;
}

export function createGuardedServer(o: GuardedServerOptions): GuardedServer {
  let hosts: ReadonlySet<string> = new Set();
  const server = http.createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: DEADLINE_CHECK_INTERVAL_MS,
      requireHostHeader: true,
    },
    (req, res) => {
      const refused = refusal(req, hosts);
      if (refused) {
        sendRefusal(res, refused);
        return;
      }
      let answered: void | Promise<void>;
      try {
        answered = o.route(req, res);
      } catch (err) {
        answered = Promise.reject(err);
      }
      void Promise.resolve(answered).catch((err: unknown) => {
        o.log.warning(`${o.name}: ${req.method} ${req.url?.slice(0, 200)} failed: ${(err as Error)?.message ?? String(err)}`);
        if (!res.headersSent) sendRefusal(res, { status: 500, why: 'internal error' });
        else res.destroy();
      });
    },
  );
  server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
  server.maxConnections = MAX_CONNECTIONS;
  if (o.upgrade) {
    const upgrade = o.upgrade;
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // node's HTTP layer has let go of the socket, its error listener too;
      // a keep-alive timer from an earlier request must not cut a bridge,
      // which may idle as long as its client likes.
      socket.on('error', () => socket.destroy());
      (socket as Socket).setTimeout(0);
      const refused = refusal(req, hosts);
      if (refused) refuseUpgrade(socket, refused);
      else upgrade(req, socket, head);
    });
  }
  return {
    server,
    listen: (at) =>
      new Promise<ApiAddress>((resolve, reject) => {
        const failed = (err: Error) => reject(err);
        server.once('error', failed);
        server.listen({ host: at.host, port: at.port }, () => {
          server.off('error', failed);
          const bound = { host: at.host, port: (server.address() as AddressInfo).port };
          hosts = acceptedHosts(bound);
          // After a successful listen an 'error' is a per-connection matter; never a crash.
          server.on('error', (err) => o.log.warning(`${o.name}: ${err.message}`));
          resolve(bound);
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
