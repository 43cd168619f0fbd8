// Hashed transfers to the simulated phone's sink and from its source: every
// byte is covered by a SHA-256 taken at both ends, so a lost, duplicated,
// reordered or corrupted byte shows as a digest mismatch. Uploads number
// every 1 MiB chunk and tag it with a stream id, so two connections' data
// swapped or a chunk delivered twice changes the digest too.
import { createHash, randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';

import { DIGEST_LENGTH } from '../protocol/measuring.js';

const CHUNK = 1 << 20;
const BLOCK = randomFillSync(Buffer.allocUnsafe(CHUNK));

export interface VerifiedResult {
  bytes: number;
  /** The digest this end computed. */
  local: string;
  /** The digest the phone computed. */
  remote: string;
  ms: number;
}

export function lengthHeader(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export interface HashedRead {
  /** SHA-256 of the first n bytes. */
  digest: Buffer;
  /** The `trailer` bytes that followed them. */
  trailer: Buffer;
  bytes: number;
}

/**
 * Reads n bytes (hashing them as they arrive, never holding them) and then
 * `trailerLength` more. `onProgress` sees the running count after each chunk.
 */
export function readHashed(
  socket: Socket,
  n: number,
  trailerLength = DIGEST_LENGTH,
  onProgress?: (bytes: number) => void,
): Promise<HashedRead> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let got = 0;
    const trailer: Buffer[] = [];
    let trailerGot = 0;
    const onData = (chunk: Buffer) => {
      let data = chunk;
      if (got < n) {
        const take = Math.min(n - got, data.length);
        hash.update(data.subarray(0, take));
        got += take;
        data = data.subarray(take);
      }
      if (data.length > 0 && trailerGot < trailerLength) {
        const take = Math.min(trailerLength - trailerGot, data.length);
        trailer.push(data.subarray(0, take));
        trailerGot += take;
        data = data.subarray(take);
      }
      onProgress?.(got + trailerGot);
      if (got === n && trailerGot === trailerLength) {
        cleanup();
        if (data.length > 0) socket.unshift(data);
        resolve({ digest: hash.digest(), trailer: Buffer.concat(trailer), bytes: got });
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`socket ended after ${got} of ${n} bytes (+${trailerGot} of ${trailerLength} trailer bytes)`));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
  });
}

/** Sends `total` numbered bytes to a sink (device port 9); the sink answers with its SHA-256. */
export async function uploadVerified(socket: Socket, total: number, streamId: number, onBytes?: (n: number) => void): Promise<VerifiedResult> {
  const started = performance.now();
  const answer = readHashed(socket, 0);
  const hash = createHash('sha256');
  socket.write(lengthHeader(total));
  for (let sent = 0, index = 0; sent < total; index++) {
    const n = Math.min(CHUNK, total - sent);
    // A fresh buffer per chunk: the socket may still hold the previous one.
    const chunk = Buffer.allocUnsafe(n);
    BLOCK.copy(chunk, 0, 0, n);
    if (n >= 16) {
      chunk.writeBigUInt64BE(BigInt(index), 0);
      chunk.writeBigUInt64BE(BigInt(streamId), 8);
    }
    hash.update(chunk);
    sent += n;
    onBytes?.(n);
    if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), answer]);
  }
  const got = await answer;
  assertNothingMore(socket);
  return { bytes: total, local: hash.digest('hex'), remote: got.trailer.toString('hex'), ms: performance.now() - started };
}

/** Asks a source (device port 19) for `total` random bytes and their SHA-256, and hashes what arrives. */
export async function downloadVerified(socket: Socket, total: number, onBytes?: (n: number) => void): Promise<VerifiedResult> {
  const started = performance.now();
  let counted = 0;
  const progress = onBytes && ((sofar: number) => {
    const payload = Math.min(sofar, total);
    onBytes(payload - counted);
    counted = payload;
  });
  const reading = readHashed(socket, total, DIGEST_LENGTH, progress);
  socket.write(lengthHeader(total));
  const got = await reading;
  assertNothingMore(socket);
  return { bytes: got.bytes, local: got.digest.toString('hex'), remote: got.trailer.toString('hex'), ms: performance.now() - started };
}

/** One request, one answer: bytes past the digest mean the phone sent more than was asked. */
function assertNothingMore(socket: Socket): void {
  if (socket.readableLength > 0) throw new Error(`${socket.readableLength} bytes more than were asked for`);
}
