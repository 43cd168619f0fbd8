// The bodies both APIs answer with: JSON as each tool parses it, and
// Go's http.Error text for go-ios. Every reply says how long it is, so a
// keep-alive client finds the next response.
import type { ServerResponse } from 'node:http';

/** JSON; `goStyle` ends it with a newline, as Go's json.Encoder does. */
export function sendJson(res: ServerResponse, status: number, value: unknown, goStyle = false): void {
  const body = `${JSON.stringify(value)}${goStyle ? '\n' : ''}`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Plain text with a newline, as Go's http.Error writes it. */
export function sendText(res: ServerResponse, status: number, text: string): void {
  const body = `${text}\n`;
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** A status with no body (go-ios's /health, 204 after a DELETE, 405). */
export function sendEmpty(res: ServerResponse, status: number): void {
  // A 204 carries no Content-Length at all (RFC 9110 §8.6).
  res.writeHead(status, status === 204 ? {} : { 'Content-Length': 0 });
  res.end();
}
