// The HTTP/2 framer RemoteXPC runs on (src/xpc/http2-frames.ts): the
// incremental parser, with the client preface when the input starts like
// one, fed whole and in random chunks; then what the connection code does
// with a frame (SETTINGS pairs, DATA without its padding).
import { Http2Error } from '../../../../src/xpc/errors.js';
import { dataOf, FRAME_HEADER_SIZE, FrameParser, FrameType, parseSettings, PREFACE, type Frame } from '../../../../src/xpc/http2-frames.js';
import type { Rng } from '../rng.js';
import { Mismatch, summary, wholeAndChunked, type Field, type Target } from '../target.js';

function use(f: Frame): string {
  if (f.type === FrameType.settings) return `s${parseSettings(f).length}`;
  if (f.type === FrameType.data) {
    const data = dataOf(f);
    if (data.length > f.payload.length) throw new Mismatch('DATA without padding is longer than the payload');
    return `d${data.length ? '+' : '0'}`;
  }
  return `t${f.type <= FrameType.continuation ? f.type : 'x'}`;
}

function run(input: Buffer, rnd: Rng): string {
  const expectPreface = input.length > 0 && input[0] === PREFACE[0];
  const { items, error } = wholeAndChunked<Frame>(
    input,
    rnd,
    () => {
      const parser = new FrameParser({ expectPreface });
      return (chunk, emit) => parser.push(chunk).forEach((f) => emit(f));
    },
    (f) => `${f.type}/${f.flags}/${f.stream}/${f.payload.toString('base64')}`,
    true,
  );
  const parts = items.map(use);
  if (error !== undefined) throw error;
  return summary(parts);
}

/** Each frame's 24-bit length, type, flags and stream, after the preface if there is one. */
function fields(input: Buffer): Field[] {
  const out: Field[] = [];
  let at = input.subarray(0, PREFACE.length).equals(PREFACE) ? PREFACE.length : 0;
  while (at + FRAME_HEADER_SIZE <= input.length && out.length < 128) {
    out.push(
      { offset: at, width: 3, endian: 'be' },
      { offset: at + 3, width: 1, endian: 'be' },
      { offset: at + 4, width: 1, endian: 'be' },
      { offset: at + 5, width: 4, endian: 'be' },
    );
    // A padded frame's pad length, and a SETTINGS or WINDOW_UPDATE value.
    if (at + FRAME_HEADER_SIZE + 6 <= input.length) out.push({ offset: at + 9, width: 1, endian: 'be' }, { offset: at + 11, width: 4, endian: 'be' });
    at += FRAME_HEADER_SIZE + input.readUIntBE(at, 3);
  }
  return out;
}

export const http2Target: Target = {
  name: 'http2',
  errors: [Http2Error],
  run,
  fields,
  dictionary: [PREFACE, PREFACE.subarray(0, 9), Buffer.from([0, 0, 0, 4, 1, 0, 0, 0, 0]), Buffer.from([0, 0, 8, 6, 0, 0, 0, 0, 0]), Buffer.from([0, 0, 0, 1, 4, 0, 0, 0, 1])],
  maxLength: 32768,
};
