// The host side of RSDCheckin (reference §3.3): on a plain TCP connection to
// a "*.shim.remote" port, send {Label, ProtocolVersion: "2", Request:
// "RSDCheckin"} in lockdown framing, read {Request: "RSDCheckin"} and
// {Request: "StartService"}; the socket then speaks the service's own
// protocol (lockdown requests, heartbeat, AFC packets) without TLS.
import { connect, type Socket } from 'node:net';

import { decodeBody, encodeFrame, FrameReader } from '../lockdown/framing.js';
import { isPlistDict, type PlistDict } from '../protocol/plist-codec.js';

export class RsdCheckinError extends Error {
  readonly code = 'ERSDCHECKIN';
  constructor(message: string) {
    super(message);
    this.name = 'RsdCheckinError';
  }
}

const CHECKIN_REPLY_LIMIT = 64 * 1024;

/**
 * Checks in on an open socket; resolves once both replies are read, with the
 * socket paused and any bytes after them put back: attach a reader, then resume().
 */
export function rsdCheckin(socket: Socket, label = 'tsmuxd', timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader(CHECKIN_REPLY_LIMIT);
    const replies: PlistDict[] = [];
    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', finish);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        socket.pause();
        const rest = reader.drain();
        if (rest.length) socket.unshift(rest);
        resolve(socket);
      }
    };
    const onClose = () => finish(new RsdCheckinError('the service closed the connection during RSDCheckin'));
    const onData = (chunk: Buffer) => {
      try {
        reader.feed(chunk);
        for (let body = reader.next(); body; body = reader.next()) {
          const reply = decodeBody(body);
          if (!isPlistDict(reply)) throw new RsdCheckinError('an RSDCheckin reply is not a dictionary');
          if (typeof reply.Error === 'string') throw new RsdCheckinError(`RSDCheckin failed: ${reply.Error}`);
          const want = replies.length === 0 ? 'RSDCheckin' : 'StartService';
          if (reply.Request !== want) throw new RsdCheckinError(`expected {Request: ${want}}, got ${String(reply.Request)}`);
          replies.push(reply);
          if (replies.length === 2) return finish();
        }
      } catch (err) {
        finish(err instanceof RsdCheckinError ? err : new RsdCheckinError((err as Error).message));
      }
    };
    const timer = setTimeout(() => finish(new RsdCheckinError(`no RSDCheckin reply in ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', finish);
    socket.write(encodeFrame({ Label: label, ProtocolVersion: '2', Request: 'RSDCheckin' }));
  });
}

/** Connects to a shim service and checks in. */
export async function openShimService(host: string, port: number, label?: string): Promise<Socket> {
  const socket = connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return rsdCheckin(socket, label);
}
