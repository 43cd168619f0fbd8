// verified.ts's hashed transfers over a websocket instead of a socket: the
// tunneld API's /connect bridge (src/tunnel-api/tunneld-connect.ts) to the
// simulated phone's sink and source. The same request shapes and the same
// numbered chunks, so a byte lost, doubled or reordered by the bridge shows
// as a digest mismatch; messages are cut at MESSAGE_BYTES, and the sender
// waits while more than SEND_AHEAD_BYTES are queued, so the test process
// itself stays small.
import { createHash, randomFillSync } from 'node:crypto';

import type { WebSocket } from 'ws';

import { DIGEST_LENGTH } from '../protocol/measuring.js';
import { lengthHeader, type VerifiedResult } from './verified.js';

/** A message's size: what a client reading a socket in 256 KiB gulps would send. */
export const MESSAGE_BYTES = 256 << 10;
const SEND_AHEAD_BYTES = 4 << 20;
const BLOCK = randomFillSync(Buffer.allocUnsafe(MESSAGE_BYTES));

/** Sends one binary message; resolves at once unless too much is queued, then once this message is written out. */
function sendPaced(ws: WebSocket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let waiting = false;
    ws.send(data, { binary: true }, (err) => {
      if (err) reject(err);
      else if (waiting) resolve();
    });
    if (ws.bufferedAmount <= SEND_AHEAD_BYTES) resolve();
    else waiting = true;
  });
}

/**
 * Reads `n` bytes of binary messages (hashing, never holding them), then a
 * `trailerLength`-byte trailer. Rejects if the websocket closes first,
 * naming the close code and reason.
 */
export function readHashedMessages(ws: WebSocket, n: number, trailerLength = DIGEST_LENGTH, onProgress?: (bytes: number) => void): Promise<{ digest: Buffer; trailer: Buffer; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let got = 0;
    const trailer: Buffer[] = [];
    let trailerGot = 0;
    const onMessage = (data: Buffer) => {
      let rest = data;
      if (got < n) {
        const take = Math.min(n - got, rest.length);
        hash.update(rest.subarray(0, take));
        got += take;
        rest = rest.subarray(take);
      }
      if (rest.length > 0) {
        trailer.push(rest);
        trailerGot += rest.length;
      }
      onProgress?.(got + trailerGot);
      if (trailerGot > trailerLength) {
        done();
        reject(new Error(`${trailerGot - trailerLength} bytes more than were asked for`));
      } else if (got === n && trailerGot === trailerLength) {
        done();
        resolve({ digest: hash.digest(), trailer: Buffer.concat(trailer), bytes: got });
      }
    };
    const onClose = (code: number, reason: Buffer) => {
      done();
      reject(new Error(`the websocket closed (${code} ${reason.toString()}) after ${got} of ${n} bytes`));
    };
    const done = () => {
      ws.off('message', onMessage);
      ws.off('close', onClose);
    };
    ws.on('message', onMessage);
    ws.on('close', onClose);
  });
}

/** `total` numbered bytes to the sink (device port 9); the sink answers with its SHA-256. */
export async function wsUploadVerified(ws: WebSocket, total: number, streamId: number): Promise<VerifiedResult> {
  const started = performance.now();
  const answer = readHashedMessages(ws, 0);
  answer.catch(() => {});
  const hash = createHash('sha256');
  await sendPaced(ws, lengthHeader(total));
  for (let sent = 0, index = 0; sent < total; index++) {
    const n = Math.min(MESSAGE_BYTES, total - sent);
    // A fresh buffer per message: ws may still hold the previous one.
    const chunk = Buffer.allocUnsafe(n);
    BLOCK.copy(chunk, 0, 0, n);
    if (n >= 16) {
      chunk.writeBigUInt64BE(BigInt(index), 0);
      chunk.writeBigUInt64BE(BigInt(streamId), 8);
    }
    hash.update(chunk);
    sent += n;
    await sendPaced(ws, chunk);
  }
  const got = await answer;
  return { bytes: total, local: hash.digest('hex'), remote: got.trailer.toString('hex'), ms: performance.now() - started };
}

/** Asks the source (device port 19) for `total` random bytes and their SHA-256, and hashes what arrives. */
export async function wsDownloadVerified(ws: WebSocket, total: number): Promise<VerifiedResult> {
  const started = performance.now();
  const reading = readHashedMessages(ws, total);
  ws.send(lengthHeader(total), { binary: true });
  const got = await reading;
  return { bytes: got.bytes, local: got.digest.toString('hex'), remote: got.trailer.toString('hex'), ms: performance.now() - started };
}
