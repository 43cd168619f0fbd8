// The host side of com.apple.mobile.(insecure_)notification_proxy: observe
// names, and hear each RelayNotification as it comes. The framing is
// lockdown's (u32 BE length + plist).
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

import { decodeBody, encodeFrame, FrameReader } from '../lockdown/framing.js';
import { isPlistDict } from '../protocol/plist-codec.js';

export const REQUEST_PAIR = 'com.apple.mobile.lockdown.request_pair';
export const REQUEST_HOST_BUID = 'com.apple.mobile.lockdown.request_host_buid';

export class NotificationObserver extends EventEmitter<{ notification: [string]; close: [] }> {
  private readonly reader = new FrameReader(64 * 1024);

  constructor(private readonly socket: Socket) {
    super();
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const body of this.reader.push(chunk)) {
          const v = decodeBody(body);
          if (isPlistDict(v) && v.Command === 'RelayNotification' && typeof v.Name === 'string') this.emit('notification', v.Name);
        }
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.emit('close'));
    socket.resume();
  }

  observe(name: string): void {
    this.socket.write(encodeFrame({ Command: 'ObserveNotification', Name: name }));
  }

  close(): void {
    this.socket.destroy();
  }
}
