// The client side of the tunnel API tests: plain HTTP requests with any
// headers (a foreign Host, an Origin), raw bytes for what no HTTP client
// sends (a malformed request, a huge header), and websockets whose refusals
// and close codes the tests read.
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';

import { WebSocket } from 'ws';

import { within } from './usbmuxd-harness.js';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** `host:port` -> its parts. */
export function hostPort(at: string): { host: string; port: number } {
  const i = at.lastIndexOf(':');
  return { host: at.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(at.slice(i + 1)) };
}

/** One request on a connection of its own. */
export function request(at: string, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const { host, port } = hostPort(at);
  return within(
    new Promise<Reply>((resolve, reject) => {
      const req = http.request({ host, port, path, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    }),
    60_000,
    `${options.method ?? 'GET'} ${path}`,
  );
}

export async function getJson(at: string, path: string): Promise<{ status: number; json: unknown }> {
  const r = await request(at, path);
  return { status: r.status, json: r.body.length ? JSON.parse(r.body) : undefined };
}

/** Writes `bytes` on a fresh connection and returns all the server sent until it closed (or `timeoutMs`). */
export async function rawExchange(at: string, bytes: string | Buffer, timeoutMs = 10_000): Promise<{ text: string; closedByServer: boolean; ms: number }> {
  const { host, port } = hostPort(at);
  const started = Date.now();
  const s = net.connect(port, host);
  s.on('error', () => {});
  await once(s, 'connect');
  if (bytes.length) s.write(bytes);
  let text = '';
  s.on('data', (d: Buffer) => (text += d.toString('latin1')));
  const closedByServer = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  s.destroy();
  return { text, closedByServer, ms: Date.now() - started };
}

export type WsOutcome = { kind: 'open'; ws: WebSocket } | { kind: 'refused'; status: number; body: string };

/** Opens a websocket; an HTTP answer instead of the upgrade is reported with its status and body. */
export function openWebSocket(url: string, headers: Record<string, string> = {}): Promise<WsOutcome> {
  return within(
    new Promise<WsOutcome>((resolve, reject) => {
      const ws = new WebSocket(url, { headers, perMessageDeflate: false });
      ws.once('open', () => resolve({ kind: 'open', ws }));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ kind: 'refused', status: res.statusCode!, body }));
        res.on('error', () => resolve({ kind: 'refused', status: res.statusCode!, body }));
      });
      ws.once('error', (err) => reject(err));
    }),
    30_000,
    `a websocket to ${url}`,
  );
}

export async function openedWebSocket(url: string): Promise<WebSocket> {
  const o = await openWebSocket(url);
  if (o.kind !== 'open') throw new Error(`${url}: refused with ${o.status} ${o.body}`);
  return o.ws;
}

export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return within(
    once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: (reason as Buffer).toString() })),
    30_000,
    'the websocket to close',
  );
}
