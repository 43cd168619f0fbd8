// The usbmuxd framer's two caps: a request (what the daemon reads) is at most
// 64 KiB, as in usbmuxd; a reply (what a client reads) may be larger, because
// ListDevices grows with the phones listed.
import t from 'tap';

import { encodeMessage, HEADER_SIZE, MAX_MESSAGE_LENGTH, MAX_REPLY_LENGTH, MessageFramer } from '../src/protocol/usbmux.js';

const sized = (length: number) => encodeMessage(1, 8, 7, Buffer.alloc(length - HEADER_SIZE, 0x61));

t.test('a request framer takes 64 KiB and refuses one byte more', async (t) => {
  const framer = new MessageFramer();
  framer.push(sized(MAX_MESSAGE_LENGTH));
  t.equal(framer.next()?.body.length, MAX_MESSAGE_LENGTH - HEADER_SIZE);
  framer.push(sized(MAX_MESSAGE_LENGTH + 1));
  t.throws(() => framer.next(), { code: 'ERR_USBMUX_BAD_LENGTH', message: /65537 is outside 16\.\.65536/ });
});

t.test('a reply framer takes a 1 MiB reply in pieces, and refuses past its cap', async (t) => {
  const framer = new MessageFramer(MAX_REPLY_LENGTH);
  const big = sized(1 << 20);
  let early = 0;
  for (let at = 0; at < big.length; at += 4096) {
    if (framer.next() !== null) early++;
    framer.push(big.subarray(at, at + 4096));
  }
  t.equal(early, 0, 'nothing before the whole message');
  const m = framer.next();
  t.equal(m?.header.tag, 7);
  t.equal(m?.body.length, (1 << 20) - HEADER_SIZE);
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32LE(MAX_REPLY_LENGTH + 1, 0);
  framer.push(header);
  t.throws(() => framer.next(), { code: 'ERR_USBMUX_BAD_LENGTH' }, 'a header past 16 MiB ends the stream at once');
});
