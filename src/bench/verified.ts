// Hashed transfers to the simulated phone's sink and from its source: every
// byte is covered by a SHA-256 taken at both ends, so a lost, duplicated,
// reordered or corrupted byte shows as a digest mismatch. Uploads number
// every 1 MiB chunk and tag it with a stream id, so two connections' data
// swapped or a chunk delivered twice changes the digest too.
import { createHash, randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';

import { DIGEST_LENGTH } from '../sim/services/measuring.js';

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

function lengthHeader(total: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(total));
  return header;
}

/** Hashes exactly `skip` payload bytes, then collects the 32-byte digest the phone appends. */
function readHashedThenTrailer(socket: Socket, skip: number, onBytes?: (n: number) => void): Promise<{ digest: string; trailer: Buffer; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const trailer: Buffer[] = [];
    let trailerBytes = 0;
    const done = (err?: Error) => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', done);
      if (err) return reject(err);
      resolve({ digest: hash.digest('hex'), trailer: Buffer.concat(trailer), bytes });
    };
    const onData = (chunk: Buffer) => {
      const body = Math.min(chunk.length, skip - bytes);
      if (body > 0) {
        hash.update(body === chunk.length ? chunk : chunk.subarray(0, body));
        bytes += body;
        onBytes?.(body);
      }
      if (body < chunk.length) {
        trailer.push(chunk.subarray(body));
        trailerBytes += chunk.length - body;
      }
      if (trailerBytes > DIGEST_LENGTH) done(new Error(`${trailerBytes - DIGEST_LENGTH} bytes more than were asked for`));
      else if (trailerBytes === DIGEST_LENGTH) done();
    };
    const onClose = () => done(new Error(`closed after ${bytes} of ${skip} bytes and ${trailerBytes} of ${DIGEST_LENGTH} digest bytes`));
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', done);
    socket.resume();
  });
}

/** Sends `total` numbered bytes to a sink (device port 9); the sink answers with its SHA-256. */
export async function uploadVerified(socket: Socket, total: number, streamId: number, onBytes?: (n: number) => void): Promise<VerifiedResult> {
  const started = performance.now();
  const answer = readHashedThenTrailer(socket, 0);
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
  return { bytes: total, local: hash.digest('hex'), remote: got.trailer.toString('hex'), ms: performance.now() - started };
}

/** Asks a source (device port 19) for `total` random bytes and their SHA-256, and hashes what arrives. */
export async function downloadVerified(socket: Socket, total: number, onBytes?: (n: number) => void): Promise<VerifiedResult> {
  const started = performance.now();
  const reading = readHashedThenTrailer(socket, total, onBytes);
  socket.write(lengthHeader(total));
  const got = await reading;
  return { bytes: got.bytes, local: got.digest, remote: got.trailer.toString('hex'), ms: performance.now() - started };
}
