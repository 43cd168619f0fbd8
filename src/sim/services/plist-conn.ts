// One connection of a "plist service" (reference §2.1): lockdown framing
// (u32 BE length + XML or binary plist) both ways. A bad frame or a body that
// is not a dict closes the connection.
import type { Socket } from 'node:net';

import { isPlistDict, type PlistDict } from '../../protocol/plist-codec.js';
import { decodeBody, encodeFrame, FrameReader } from '../../lockdown/framing.js';

export function servePlist(socket: Socket, onMessage: (msg: PlistDict) => void): (msg: PlistDict) => void {
  const reader = new FrameReader();
  const send = (msg: PlistDict) => {
    if (!socket.destroyed && socket.writable) socket.write(encodeFrame(msg));
  };
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    try {
      reader.feed(chunk);
      for (let body = reader.next(); body && !socket.destroyed; body = reader.next()) {
        const msg = decodeBody(body);
        if (!isPlistDict(msg)) throw new Error('plist service message is not a dict');
        onMessage(msg);
      }
    } catch {
      socket.destroy();
    }
  });
  return send;
}
