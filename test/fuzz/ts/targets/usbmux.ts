// The usbmuxd client protocol, both ends: the 16-byte header framer fed in
// random chunks, then each message as the daemon reads a request (binary
// Connect, plist body through the fast path or the general parser) and as
// the client library reads a reply. Two targets share this code; they
// differ in their seeds and tokens (binary v0 messages, plist v1 messages).
import { decodeReply, UsbmuxError } from '../../../../src/client/channel.js';
import { parsePlist, PlistError } from '../../../../src/protocol/plist-codec.js';
import { parseFlatRequest } from '../../../../src/server/flat-request.js';
import { decodeConnectBinary, HEADER_SIZE, MessageFramer, MessageType, ProtocolError, ProtocolVersion, type Message } from '../../../../src/protocol/usbmux.js';
import type { Rng } from '../rng.js';
import { canon, Mismatch, shape, summary, wholeAndChunked, type Fed, type Field, type Target } from '../target.js';
import { PLIST_TOKENS } from './plist.js';

const ERRORS = [ProtocolError, PlistError, UsbmuxError];

function frames(input: Buffer, rnd: Rng): Fed<Message> {
  return wholeAndChunked(
    input,
    rnd,
    () => {
      const framer = new MessageFramer();
      return (chunk, emit) => {
        framer.push(chunk);
        for (let m = framer.next(); m; m = framer.next()) emit(m);
      };
    },
    (m) => `${m.header.version}/${m.header.message}/${m.header.tag}/${m.body.toString('base64')}`,
  );
}

/** What the daemon does with one request, up to the point it acts on it. */
function asRequest({ header, body }: Message): string {
  if (header.version === ProtocolVersion.Binary) {
    if (header.message !== MessageType.Connect) return `v0:${header.message <= 8 ? header.message : 'x'}`;
    const { port } = decodeConnectBinary(body);
    return `v0:connect:${port === 0 ? 0 : 1}`;
  }
  if (header.version !== ProtocolVersion.Plist || header.message !== MessageType.Plist) return 'other';
  const fast = parseFlatRequest(body);
  if (fast !== undefined) {
    // The fast path must answer exactly as the general parser would.
    let general: unknown;
    try {
      general = parsePlist(body);
    } catch (err) {
      throw new Mismatch(`the fast path took a body the general parser rejects (${(err as Error).message})`);
    }
    if (canon(general) !== canon(fast)) throw new Mismatch('the fast path and the general parser read different dicts');
    return `v1:fast:${shape(fast)}`;
  }
  return `v1:${shape(parsePlist(body))}`;
}

/** What the client library makes of the same message as a reply. */
function asReply(m: Message): string {
  return decodeReply(m).kind;
}

function run(input: Buffer, rnd: Rng): string {
  const parts: string[] = [];
  const { items, error } = frames(input, rnd);
  for (const m of items) {
    for (const side of [asRequest, asReply]) {
      try {
        parts.push(side(m));
      } catch (err) {
        if (!ERRORS.some((cls) => err instanceof cls)) throw err;
        parts.push(`!${(err as { code: string }).code}`);
      }
    }
  }
  // The framer's own error comes last, after the messages before it were used.
  if (error !== undefined) throw error;
  return summary(parts);
}

/** The header fields of every message in the stream, as far as the lengths lead. */
function fields(input: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at + HEADER_SIZE <= input.length && out.length < 64) {
    for (let o = 0; o < 16; o += 4) out.push({ offset: at + o, width: 4, endian: 'le' });
    // Binary Connect: the port is big-endian.
    out.push({ offset: at + 20, width: 2, endian: 'be' });
    const length = input.readUInt32LE(at);
    if (length < HEADER_SIZE) break;
    at += length;
  }
  return out;
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

export const usbmuxV0: Target = {
  name: 'usbmux-v0',
  errors: ERRORS,
  run,
  fields,
  dictionary: [u32(0), u32(1), u32(2), u32(3), u32(4), u32(5), u32(6), u32(8), u32(16), u32(268), Buffer.alloc(16)],
  maxLength: 8192,
};

export const usbmuxV1: Target = {
  name: 'usbmux-v1',
  errors: ERRORS,
  run,
  fields,
  dictionary: [...PLIST_TOKENS, u32(1), u32(8), u32(16)],
  maxLength: 8192,
};
