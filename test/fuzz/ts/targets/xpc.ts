// The XPC codec (src/xpc/message.ts, object-codec.ts): the message
// assembler fed in random chunks, each message decoded, and every decoded
// body re-encoded and decoded again to the same value (the codec promises
// decode(encode(x)) is x; byte equality is not promised, since peers pad and
// size containers differently).
import { XpcError } from '../../../../src/xpc/errors.js';
import { decodeMessage, encodeMessage, HEADER_SIZE, MessageAssembler, topLevelOffsets } from '../../../../src/xpc/message.js';
import type { Rng } from '../rng.js';
import { canon, Mismatch, shape, summary, wholeAndChunked, type Field, type Target } from '../target.js';

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

function decodeChecked(bytes: Buffer): string {
  const m = decodeMessage(bytes);
  if (m.body === undefined) return 'hdr';
  const again = decodeMessage(encodeMessage(m));
  if (canon(again.body) !== canon(m.body) || again.flags !== m.flags || again.messageId !== m.messageId) {
    throw new Mismatch('an XPC message re-encoded decodes to something else');
  }
  // The offsets walk must agree with the decoder on what is a valid dictionary.
  let offsets: Map<string, number>;
  try {
    offsets = topLevelOffsets(bytes);
  } catch (err) {
    throw new Mismatch(`topLevelOffsets rejects a message the decoder takes: ${(err as Error).message}`);
  }
  if (offsets.size !== new Set(m.body.keys()).size) throw new Mismatch(`topLevelOffsets found ${offsets.size} keys, the decoder ${m.body.size}`);
  return shape(m.body);
}

function run(input: Buffer, rnd: Rng): string {
  const { items, error } = wholeAndChunked<Buffer>(
    input,
    rnd,
    () => {
      const assembler = new MessageAssembler();
      return (chunk, emit) => assembler.push(chunk).forEach(emit);
    },
    (m) => m.toString('base64'),
    true,
  );
  const parts: string[] = [];
  for (const m of items) {
    try {
      parts.push(decodeChecked(m));
    } catch (err) {
      if (!(err instanceof XpcError)) throw err;
      parts.push(`!${err.code}`);
    }
  }
  if (error !== undefined) throw error;
  return summary(parts);
}

/** Wrapper fields of each message, then every aligned u32 of the body (types, lengths, counts). */
function fields(input: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at + HEADER_SIZE <= input.length && out.length < 256) {
    out.push({ offset: at + 4, width: 4, endian: 'le' }, { offset: at + 8, width: 8, endian: 'le' });
    const body = input.readBigUInt64LE(at + 8);
    const end = body > BigInt(input.length) ? input.length : at + HEADER_SIZE + Number(body);
    for (let o = at + HEADER_SIZE; o + 4 <= end && out.length < 256; o += 4) out.push({ offset: o, width: 4, endian: 'le' });
    at = end;
  }
  return out;
}

export const xpcTarget: Target = {
  name: 'xpc',
  errors: [XpcError],
  run,
  fields,
  dictionary: [
    0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x7000, 0x8000, 0x9000, 0xa000, 0xb000, 0xe000, 0xf000, 0x12000, 0x1a000, 0x29b00b92, 0x42133742, 5,
  ].map(u32),
  maxLength: 32768,
};
