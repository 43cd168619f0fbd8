// Connections to a remote usbmux host in JS: the Listen link, its pings and
// forwarded requests (docs/remote.md). Only usbmuxd messages travel here; a
// Connect's bytes never do (remote-dials.ts hands those to the data plane).
import net, { type Socket } from 'node:net';
import tls from 'node:tls';

import type { RemoteTlsPem } from '../native/addon.js';
import { isPlistDict, parsePlist, type PlistDict } from '../protocol/plist-codec.js';
import { MessageFramer, MessageType, ProtocolVersion, type Message } from '../protocol/usbmux.js';
import { connectPaused } from '../util/paused-connect.js';
import { nodeTlsOptions } from './remote-tls.js';

export interface RemoteTarget {
  host: string;
  port: number;
  /** null: plain TCP (--insecure, or usbfluxd's own AddInstance). */
  tls: RemoteTlsPem | null;
}

export const formatTarget = (t: { host: string; port: number }): string =>
  t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;

/** A TCP connection (and TLS handshake) to a remote. */
export const REMOTE_CONNECT_TIMEOUT_MS = 5_000;

/** Opens a connection, TLS unless the target is plain; rejects with why. */
export function openRemote(target: RemoteTarget, timeoutMs = REMOTE_CONNECT_TIMEOUT_MS): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = target.tls
      ? tls.connect({ host: target.host, port: target.port, ...nodeTlsOptions(target.tls) })
      : net.connect({ host: target.host, port: target.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no ${target.tls ? 'TLS session' : 'connection'} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);  // 'close' follows; its owner handles that
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** A plain TCP connection, paused before it connects: its fd goes to the data plane, which runs TLS itself. */
export function pausedTcp(target: RemoteTarget, timeoutMs = REMOTE_CONNECT_TIMEOUT_MS): Promise<Socket> {
  return connectPaused(target.host, target.port, timeoutMs);
}

/** A remote's message as the link reads it. */
export type RemoteMessage = { kind: 'result'; tag: number; result: number } | { kind: 'plist'; tag: number; dict: PlistDict };

/**
 * Decodes one message from a remote. Framing caps the length (64 KiB,
 * MessageFramer): a remote only sends us Results, one phone's Attached and
 * pair records, never a ListDevices; a plist that is not a dictionary, or a message type a
 * usbmuxd does not send, is the remote's fault and ends its connection.
 */
export function decodeRemoteMessage({ header, body }: Message): RemoteMessage {
  if (header.version === ProtocolVersion.Binary && header.message === MessageType.Result && body.length >= 4) {
    return { kind: 'result', tag: header.tag, result: body.readUInt32LE(0) };
  }
  if (header.message !== MessageType.Plist) throw new Error(`a message of type ${header.message}`);
  const dict = parsePlist(body);
  if (!isPlistDict(dict)) throw new Error('a plist that is not a dictionary');
  if (dict.MessageType === 'Result') return { kind: 'result', tag: header.tag, result: Number(dict.Number) };
  return { kind: 'plist', tag: header.tag, dict };
}

/** Calls `onMessage` for each message the socket brings; `onError` once for a broken stream. */
export function readMessages(socket: Socket, onMessage: (m: RemoteMessage) => void, onError: (err: Error) => void): void {
  const framer = new MessageFramer();
  socket.on('data', (chunk: Buffer) => {
    framer.push(chunk);
    try {
      for (let m = framer.next(); m; m = framer.next()) onMessage(decodeRemoteMessage(m));
    } catch (err) {
      socket.destroy();
      onError(err as Error);
    }
  });
}

/** One request on a fresh connection, and its answer (forwarded pair-record requests, ReadBUID). */
export async function exchange(target: RemoteTarget, request: Buffer, timeoutMs = REMOTE_CONNECT_TIMEOUT_MS): Promise<RemoteMessage> {
  const socket = await openRemote(target, timeoutMs);
  try {
    return await new Promise<RemoteMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      readMessages(
        socket,
        (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
      socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error('the remote closed the connection'));
      });
      socket.write(request);
    });
  } finally {
    socket.destroy();
  }
}
