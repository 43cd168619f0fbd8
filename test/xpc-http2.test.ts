// The HTTP/2 frame layer (src/xpc/http2-frames.ts): the reference's byte
// vectors, reassembly across chunks, checks on every frame's shape, and a
// seeded mutational fuzz loop over a client's handshake bytes.
import t from 'tap';

import { Http2Error } from '../src/xpc/errors.js';
import {
  dataFrame,
  dataFrames,
  dataOf,
  encodeFrame,
  frameBytes,
  FrameParser,
  FrameType,
  goawayFrame,
  headersFrame,
  parseSettings,
  pingFrame,
  PREFACE,
  rstStreamFrame,
  Setting,
  settingsAckFrame,
  settingsFrame,
  windowUpdateFrame,
  type Frame,
} from '../src/xpc/http2-frames.js';
import { encodeMessage, MessageAssembler } from '../src/xpc/message.js';
import { mutate, seededRandom } from './helpers/seeded-random.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

t.test('the reference vectors (§3.2)', async (t) => {
  t.same(PREFACE, hex('505249202a20485454502f322e300d0a0d0a534d0d0a0d0a'));
  const settings = (win: number) => frameBytes(settingsFrame([[Setting.maxConcurrentStreams, 100], [Setting.initialWindowSize, win]]));
  t.same(settings(1048576), hex('00000c040000000000000300000064000400100000'), 'SETTINGS 1 MiB');
  t.same(settings(16777216), hex('00000c040000000000000300000064000401000000'), 'SETTINGS 16 MiB');
  t.same(frameBytes(windowUpdateFrame(0, 983041)), hex('000004080000000000000f0001'));
  t.same(frameBytes(windowUpdateFrame(0, 16711681)), hex('00000408000000000000ff0001'));
  t.same(frameBytes(headersFrame(1)), hex('000000010400000001'));
  t.same(frameBytes(headersFrame(3)), hex('000000010400000003'));
  t.same(frameBytes(settingsAckFrame()), hex('000000040100000000'));
});

const CLIENT_HANDSHAKE = (): Buffer =>
  Buffer.concat([
    PREFACE,
    ...[
      settingsFrame([[3, 100], [4, 16777216]]),
      windowUpdateFrame(0, 16711681),
      headersFrame(1),
      dataFrame(1, encodeMessage({ flags: 1, messageId: 0n, body: new Map() })),
      headersFrame(3),
      dataFrame(1, encodeMessage({ flags: 0x201, messageId: 0n })),
      dataFrame(3, encodeMessage({ flags: 0x400001, messageId: 0n })),
      settingsAckFrame(),
    ].map(frameBytes),
  ]);

t.test('the parser takes any chunking, and checks the preface', async (t) => {
  const bytes = CLIENT_HANDSHAKE();
  const whole = new FrameParser({ expectPreface: true }).push(bytes);
  t.equal(whole.length, 8);
  t.same(parseSettings(whole[0]!), [[3, 100], [4, 16777216]]);
  for (const size of [1, 5, 9, 13, 100]) {
    const p = new FrameParser({ expectPreface: true });
    const frames: Frame[] = [];
    for (let at = 0; at < bytes.length; at += size) frames.push(...p.push(bytes.subarray(at, at + size)));
    t.same(frames, whole, `chunks of ${size}`);
  }
  t.throws(() => new FrameParser({ expectPreface: true }).push(Buffer.from('GET / HTTP/1.1\r\n')), { code: 'EH2PREFACE' });
  t.throws(() => new FrameParser({ expectPreface: true }).push(Buffer.from('PRX')), { code: 'EH2PREFACE' }, 'fails on the first wrong byte');
});

t.test('a message spans DATA frames and a frame holds several messages', async (t) => {
  const big = encodeMessage({ flags: 0x101, messageId: 1n, body: new Map([['blob', Buffer.alloc(40000, 1)]]) });
  const frames = dataFrames(1, big);
  t.same(frames.map((f) => f.payload.length), [16384, 16384, big.length - 32768], 'at most 16384 bytes per DATA frame');
  const asm = new MessageAssembler();
  const out = frames.flatMap((f) => asm.push(dataOf(f)));
  t.same(out, [big]);
  const two = Buffer.concat([encodeMessage({ flags: 1, messageId: 0n }), encodeMessage({ flags: 0x201, messageId: 0n })]);
  t.equal(new MessageAssembler().push(dataOf(dataFrame(1, two))).length, 2, 'two messages in one frame');
  const padded = encodeFrame(FrameType.data, 0x8, 1, Buffer.concat([Buffer.from([3]), Buffer.from('abc'), Buffer.alloc(3)]));
  t.same(dataOf(new FrameParser().push(padded)[0]!), Buffer.from('abc'), 'padding is removed');
});

t.test('frames with a bad shape are Http2Errors', async (t) => {
  const bad = (bytes: Buffer, what: string, options = {}) =>
    t.throws(() => new FrameParser(options).push(bytes), { code: 'EH2FRAME' }, what);
  bad(encodeFrame(FrameType.settings, 0, 0, Buffer.alloc(5)), 'SETTINGS of 5 bytes');
  bad(encodeFrame(FrameType.settings, 1, 0, Buffer.alloc(6)), 'SETTINGS ACK with a payload');
  bad(encodeFrame(FrameType.settings, 0, 1, Buffer.alloc(0)), 'SETTINGS on a stream');
  bad(encodeFrame(FrameType.windowUpdate, 0, 0, Buffer.alloc(4)), 'zero WINDOW_UPDATE');
  bad(encodeFrame(FrameType.data, 0, 0, Buffer.alloc(4)), 'DATA on stream 0');
  bad(encodeFrame(FrameType.data, 0x8, 1, Buffer.from([9, 1])), 'padding past the payload');
  bad(encodeFrame(FrameType.rstStream, 0, 1, Buffer.alloc(3)), 'short RST_STREAM');
  bad(encodeFrame(FrameType.ping, 0, 0, Buffer.alloc(4)), 'short PING');
  bad(encodeFrame(FrameType.goaway, 0, 0, Buffer.alloc(4)), 'short GOAWAY');
  bad(hex('ffffff00 00 00000001'), 'a 16 MiB frame over a 1 MiB limit fails on its header', { maxPayload: 1 << 20 });
  t.same(new FrameParser().push(encodeFrame(0x42, 0, 0, Buffer.alloc(2))).map((f) => f.type), [0x42], 'unknown types pass');
  t.ok(rstStreamFrame(1, 5) && goawayFrame(1, 0) && pingFrame(Buffer.alloc(8)), 'the other encoders');
  t.throws(() => pingFrame(Buffer.alloc(2)), { code: 'EH2FRAME' });
});

t.test('seeded mutational fuzz over a client handshake: frames or Http2Errors, nothing else', async (t) => {
  const rnd = seededRandom(0xf4a3e);
  const seed = CLIENT_HANDSHAKE();
  let parsed = 0;
  let rejected = 0;
  for (let i = 0; i < 20000; i++) {
    let input = seed;
    for (let n = 1 + rnd.int(3); n > 0; n--) input = mutate(input, rnd);
    const p = new FrameParser({ expectPreface: true, maxPayload: 1 << 20 });
    try {
      for (let at = 0, step = 1; at < input.length; at += step) {
        step = 1 + rnd.int(64);
        parsed += p.push(input.subarray(at, at + step)).length;
      }
    } catch (err) {
      if (!(err instanceof Http2Error)) {
        t.fail(`case ${i}: ${(err as Error).message} for ${input.toString('hex')}`);
        return;
      }
      rejected++;
    }
  }
  t.ok(parsed > 1000 && rejected > 1000, `${parsed} frames parsed, ${rejected} inputs rejected`);
});
