// One host connection to the simulated lockdownd, as a transport: plaintext
// frames, then (after StartSession) TLS records on the same socket, then
// (after StopSession and both close_notify alerts) plaintext again. What each
// request means is the Lockdownd's business (handle); this file only moves
// frames and switches modes. A bad frame or a failed TLS handshake closes
// this connection only.
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';

import { decodeBody, encodeFrame, FrameReader, TLS_ALERT, TlsRecordSplitter } from '../../lockdown/framing.js';
import { RecordPipe } from '../../lockdown/record-pipe.js';
import { isPlistDict, type PlistDict } from '../../protocol/plist-codec.js';
import { SESSION_TLS } from './values.js';

export interface Session {
  id: string;
  hostId: string;
}

export interface Connection {
  session?: Session;
  /** Set by a handler: what to do with the socket once its reply is written. */
  after?: 'startTls' | 'stopTls' | 'close';
  /** A Pair on this connection used up the user's Trust tap. */
  trustedPair?: string;
}

export interface SessionTlsInfo {
  hostId: string;
  protocol: string | null;
  cipher: string;
  clientCertificate: boolean;
}

/** What the connection needs of the lockdownd it serves. */
export interface LockdownConnectionHost {
  maxFrame: number;
  /** One request -> its reply; may set conn.after to switch modes once the reply is out. */
  handle(conn: Connection, request: PlistDict): PlistDict;
  /** The device key and this host's DeviceCertificate, for StartSession's TLS server. */
  sessionCredentials(hostId: string): { key: string; cert: Buffer; hostId: string } | undefined;
  onSecure(info: SessionTlsInfo): void;
  /** The host closed the connection of a Pair that the user's Trust tap allowed. */
  onTrustedPairClosed(hostId: string): void;
}

/** Serves one host connection until it closes or sends something malformed. */
export function serveLockdownConnection(socket: Socket, host: LockdownConnectionHost): void {
  const conn: Connection = {};
  let mode: 'plain' | 'tls' | 'closing' | 'reverting' | 'done' = 'plain';
  let plain = new FrameReader(host.maxFrame);
  let records = new TlsRecordSplitter();
  let pipe: RecordPipe | undefined;
  let tls: TLSSocket | undefined;
  let held: Buffer[] = [];

  const kill = () => {
    mode = 'done';
    tls?.destroy();
    pipe?.destroy();
    socket.destroy();
  };

  /** Decodes and answers one frame, then applies the mode change its handler asked for. */
  const answer = (body: Buffer, write: (b: Buffer) => void): void => {
    const request = decodeBody(body);
    if (!isPlistDict(request) || typeof request.Request !== 'string') {
      throw new Error('lockdown request is not a dict with a Request string');
    }
    conn.after = undefined;
    const reply = host.handle(conn, request);
    // The mode changes before the reply goes out, so whatever the host sends
    // once it has the reply (a ClientHello, a close_notify) is routed right.
    if (conn.after === 'startTls') startTls();
    else if (conn.after === 'stopTls') mode = 'closing';
    write(encodeFrame(reply));
    if (conn.after === 'close') {
      const wasTls = mode === 'tls' ? tls : undefined;
      mode = 'done';
      // Over TLS, let the encrypted reply (and close_notify) out first.
      if (wasTls) wasTls.end(() => socket.end());
      else socket.end();
    }
  };

  const startTls = () => {
    const credentials = conn.session && host.sessionCredentials(conn.session.hostId);
    if (!credentials) throw new Error('session without a pair record');
    const secureContext = createSecureContext({ ...SESSION_TLS, key: credentials.key, cert: credentials.cert });
    pipe = new RecordPipe(socket);
    tls = new TLSSocket(pipe, { isServer: true, secureContext, requestCert: true, rejectUnauthorized: false });
    const tlsReader = new FrameReader(host.maxFrame);
    const thisTls = tls;
    const hostId = credentials.hostId;
    tls.once('secure', () => {
      const peer = thisTls.getPeerCertificate();
      host.onSecure({
        hostId,
        protocol: thisTls.getProtocol(),
        cipher: thisTls.getCipher().name,
        clientCertificate: !!peer && Object.keys(peer).length > 0,
      });
    });
    tls.on('error', () => {
      if (tls === thisTls) kill();
    });
    tls.on('data', (chunk: Buffer) => {
      if (tls !== thisTls || mode !== 'tls') return;
      try {
        tlsReader.feed(chunk);
        for (let body = tlsReader.next(); body && mode === 'tls'; body = tlsReader.next()) {
          answer(body, (b) => thisTls.write(b));
        }
      } catch {
        kill();
      }
    });
    mode = 'tls';
    records = new TlsRecordSplitter();
  };

  /** Both close_notify alerts are out: plaintext again on the same socket. */
  const revert = () => {
    if (mode !== 'reverting') return;
    tls = undefined;
    pipe = undefined;
    conn.session = undefined;
    mode = 'plain';
    plain = new FrameReader(host.maxFrame);
    const rest = Buffer.concat(held);
    held = [];
    if (rest.length) onRaw(rest);
  };

  const onRaw = (chunk: Buffer): void => {
    try {
      if (mode === 'plain') {
        plain.feed(chunk);
        for (let body = plain.next(); body; body = plain.next()) {
          answer(body, (b) => socket.write(b));
          if ((mode as string) !== 'plain') break;
        }
        // Bytes after StartSession's frame belong to the TLS handshake.
        if ((mode as string) === 'tls') onRaw(plain.drain());
        return;
      }
      if (mode === 'tls' || mode === 'closing') {
        records.feed(chunk);
        for (let rec = records.next(); rec; rec = records.next()) {
          pipe!.push(rec);
          if (mode === 'closing' && rec[0] === TLS_ALERT) {
            // The host's close_notify after StopSession: answer with ours
            // (TLS output goes to the raw socket through the pipe), then
            // anything further is plaintext.
            mode = 'reverting';
            held.push(records.drain());
            const closing = tls!;
            closing.end();
            closing.once('finish', () => setImmediate(revert));
            closing.once('close', () => setImmediate(revert));
            return;
          }
        }
        return;
      }
      if (mode === 'reverting') held.push(chunk);
    } catch {
      kill();
    }
  };

  socket.on('error', () => kill());
  socket.on('close', () => {
    mode = 'done';
    tls?.destroy();
    pipe?.destroy();
    const hostId = conn.trustedPair;
    if (hostId !== undefined) host.onTrustedPairClosed(hostId);
  });
  socket.on('data', (chunk: Buffer) => {
    if (mode !== 'done') onRaw(chunk);
  });
}
