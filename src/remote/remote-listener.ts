// `--remote-listen HOST:PORT` (docs/remote.md): the usbmuxd protocol for
// other hosts. With TLS (the default) each connection's TLS, handshake
// included, is the data plane's (NativeEngine.serveRemote): a client
// without a certificate, with one the CA did not sign, or an expired one is
// refused there, and the log says which. What the handshake lets through
// reaches the usbmuxd server as a client over a socketpair, marked remote:
// none of the extension requests, and pair records as the policy says.
// `--remote-insecure` serves plain TCP, after a warning.
import net, { type Socket } from 'node:net';

import type { MuxEngine } from '../native/mux-engine.js';
import type { RemoteTlsPem } from '../native/addon.js';
import type { Logger } from '../util/log.js';
import { formatTarget } from './remote-wire.js';

/** Remote connections at once (Listen links, requests and Connects); more are closed at accept. */
export const MAX_REMOTE_CLIENTS = 512;
/** A TLS client must finish its handshake within this. */
export const REMOTE_HANDSHAKE_TIMEOUT_MS = 10_000;
const LISTEN_BACKLOG = 256;

export interface RemoteListenerOptions {
  engine: MuxEngine;
  log: Logger;
  host: string;
  port: number;
  /** null: plain TCP (--remote-insecure). */
  tls: RemoteTlsPem | null;
  /** Serves a remote client's (plaintext) socket as a usbmuxd client. */
  serve: (socket: Socket, label: string) => void;
}

interface Handshake {
  label: string;
  timer: NodeJS.Timeout;
  secure: boolean;
}

export class RemoteListener {
  private readonly server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
  private readonly handshakes = new Map<number, Handshake>();
  private nextClient = 1;
  private open = 0;
  private refusedForCap = 0;
  boundPort = 0;

  constructor(private readonly options: RemoteListenerOptions) {
    options.engine.on('remoteSecure', (conn, text) => {
      const h = this.handshakes.get(conn);
      if (!h) return;
      h.secure = true;
      clearTimeout(h.timer);
      options.log.info(`${h.label}: ${text}`);
    });
    options.engine.on('closed', (conn, info) => {
      const h = this.handshakes.get(conn);
      if (!h) return;
      this.handshakes.delete(conn);
      clearTimeout(h.timer);
      if (!h.secure) options.log.warning(`${h.label} refused: ${info.reason}`);
    });
  }

  async listen(): Promise<void> {
    const { host, port, tls, log } = this.options;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: LISTEN_BACKLOG, ipv6Only: host.includes(':') }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as net.AddressInfo).port;
    const where = formatTarget({ host, port: this.boundPort });
    if (tls) log.notice(`remote usbmux on ${where}: TLS 1.3, client certificates required`);
    else log.warning(`remote usbmux on ${where} is plain TCP (--remote-insecure): anyone who reaches it can use every phone here`);
  }

  close(): Promise<void> {
    for (const [conn, h] of this.handshakes) {
      clearTimeout(h.timer);
      this.options.engine.closeConnection(conn);
    }
    this.handshakes.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    const { engine, log, tls, serve } = this.options;
    const label = `remote client ${this.nextClient++} (${formatTarget({ host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 })})`;
    if (this.open >= MAX_REMOTE_CLIENTS) {
      // Once per hundred, so a flood is one line now and then.
      if (this.refusedForCap++ % 100 === 0) log.warning(`${label} refused: ${MAX_REMOTE_CLIENTS} remote connections are open (${this.refusedForCap} so far)`);
      socket.destroy();
      return;
    }
    this.open++;
    let plain: Socket;
    if (!tls) {
      plain = socket;
      plain.resume();
    } else {
      let served: { conn: number; fd: number };
      try {
        served = engine.remote.serve(socket, tls);
      } catch (err) {
        this.open--;
        log.error(`${label}: cannot serve it: ${(err as Error).message}`);
        socket.destroy();
        return;
      }
      const timer = setTimeout(() => {
        log.warning(`${label} refused: no TLS handshake within ${REMOTE_HANDSHAKE_TIMEOUT_MS} ms`);
        this.handshakes.delete(served.conn);
        engine.closeConnection(served.conn);
      }, REMOTE_HANDSHAKE_TIMEOUT_MS);
      this.handshakes.set(served.conn, { label, timer, secure: false });
      plain = new net.Socket({ fd: served.fd, readable: true, writable: true });
    }
    plain.once('close', () => this.open--);
    serve(plain, label);
  }
}
