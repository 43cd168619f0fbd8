// A stand-in for another usbmuxd (libimobiledevice's cannot run here: it
// binds /var/run/usbmuxd and wants USB): it answers ListDevices with an
// empty list and every other plist request with Result 1, as usbmuxd answers
// a MessageType it does not know. Hand-built frames, independent of
// src/server.
import net from 'node:net';
import { join } from 'node:path';

import { frame, parseXmlBody, xmlPlist } from './usbmuxd-harness.js';

type Teardown = { teardown(fn: () => void | Promise<void>): void };

export interface ForeignDaemon {
  address: string;
  /** MessageTypes received, in order. */
  requests: string[];
}

export async function startForeignDaemon(t: Teardown, dir: string): Promise<ForeignDaemon> {
  const path = join(dir, 'foreign.sock');
  const requests: string[] = [];
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 16) {
        const length = buf.readUInt32LE(0);
        if (length < 16 || length > 0x10000) return void socket.destroy();
        if (buf.length < length) return;
        const tag = buf.readUInt32LE(12);
        const dict = parseXmlBody(buf.subarray(16, length));
        buf = buf.subarray(length);
        const type = String(dict.MessageType);
        requests.push(type);
        const reply =
          type === 'ListDevices'
            ? '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n\t<key>DeviceList</key>\n\t<array/>\n</dict>\n</plist>\n'
            : xmlPlist({ MessageType: 'Result', Number: 1 });
        socket.write(frame(1, 8, tag, Buffer.from(reply, 'utf8')));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { address: `UNIX:${path}`, requests };
}
