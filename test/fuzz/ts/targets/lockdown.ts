// Lockdown framing (src/lockdown/framing.ts): u32 big-endian length frames
// fed in random chunks, each body decoded as the client does (control bytes
// blanked in XML, then the plist codec); and the same bytes through the TLS
// record splitter the session uses to leave TLS again.
import { decodeBody, FrameReader, FramingError, TlsRecordSplitter } from '../../../../src/lockdown/framing.js';
import { PlistError } from '../../../../src/protocol/plist-codec.js';
import type { Rng } from '../rng.js';
import { shape, summary, wholeAndChunked, type Field, type Target } from '../target.js';
import { PLIST_TOKENS } from './plist.js';

const typed = (err: unknown) => err instanceof FramingError || err instanceof PlistError;

function lockdownFrames(input: Buffer, rnd: Rng): string[] {
  // The client takes frames one by one with next(), so nothing is lost before an error.
  const { items, error } = wholeAndChunked<Buffer>(
    input,
    rnd,
    () => {
      const reader = new FrameReader();
      return (chunk, emit) => {
        reader.feed(chunk);
        for (let f = reader.next(); f; f = reader.next()) emit(f);
      };
    },
    (body) => body.toString('base64'),
  );
  const parts: string[] = [];
  for (const body of items) {
    try {
      parts.push(shape(decodeBody(body)));
    } catch (err) {
      if (!typed(err)) throw err;
      parts.push(`!${(err as PlistError).code}`);
    }
  }
  if (error !== undefined && !typed(error)) throw error;
  if (error !== undefined) parts.push(`!${(error as FramingError).code}`);
  return parts;
}

function tlsRecords(input: Buffer, rnd: Rng): string {
  const { items, error } = wholeAndChunked<Buffer>(
    input,
    rnd,
    () => {
      const splitter = new TlsRecordSplitter();
      return (chunk, emit) => {
        splitter.feed(chunk);
        for (let r = splitter.next(); r; r = splitter.next()) emit(r);
      };
    },
    (r) => r.toString('base64'),
  );
  if (error !== undefined && !typed(error)) throw error;
  return error !== undefined ? 'tls!' : `tls${Math.min(items.length, 4)}`;
}

function fields(input: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at + 4 <= input.length && out.length < 64) {
    out.push({ offset: at, width: 4, endian: 'be' });
    at += 4 + input.readUInt32BE(at);
  }
  // A TLS record header's length, if the input is one.
  if (input.length >= 5) out.push({ offset: 3, width: 2, endian: 'be' });
  return out;
}

export const lockdownTarget: Target = {
  name: 'lockdown',
  errors: [FramingError, PlistError],
  run: (input, rnd) => summary([...lockdownFrames(input, rnd), tlsRecords(input, rnd)]),
  fields,
  dictionary: [...PLIST_TOKENS, Buffer.from([0, 0, 0, 0]), Buffer.from([0, 0x10, 0, 1]), Buffer.from([0x16, 3, 3]), Buffer.from([0x15, 3, 1, 0, 2])],
  maxLength: 16384,
};
