// tunneld's /connect websocket (pymobiledevice3 #1893): a byte stream to a
// port inside a device's tunnel, for a client that cannot reach the
// tunnel's address itself. Each bridge opens a TCP connection to the
// tunnel's preamble listener, writes the preamble (the device's address and
// the port) and then moves binary messages one way and socket bytes the
// other. Close codes as tunneld's: 4404 when the UDID has no tunnel, 4502
// when the connection inside the tunnel failed (see `ended` for what we can
// tell of that through the preamble listener).
//
// Unlike the rest of the tunnel, these bytes go through JS, so both
// directions stop reading where the other stops taking: a client that
// stops reading costs at most PAUSE_DEVICE_AT_BYTES here (plus the native
// stream's window), and a device that stops reading makes us stop reading
// the client. `ws` is imported at the first /connect: a daemon whose
// clients never bridge never loads it.
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

import type { WebSocket, WebSocketServer } from 'ws';

import { encodeTunnelPreamble } from '../protocol/tunnel-preamble.js';
import { refuseUpgrade } from './http-guard.js';
import { findTunnel, type TunnelApiContext } from './request-params.js';

export const WS_CLOSE_NO_TUNNEL = 4404;
export const WS_CLOSE_CONNECT_FAILED = 4502;
const WS_CLOSE_NORMAL = 1000;
const WS_CLOSE_UNSUPPORTED_DATA = 1003;
const WS_CLOSE_INTERNAL_ERROR = 1011;
/** A close frame's reason is at most 123 bytes (RFC 6455 §5.5). */
const MAX_CLOSE_REASON_BYTES = 123;

/** Bridges at once; the rest of MAX_CONNECTIONS stays for plain requests. */
export const MAX_BRIDGES = 32;
/** The largest message a client may send (ws answers a larger one with 1009); clients send socket-read sized chunks. */
export const MAX_CLIENT_MESSAGE_BYTES = 1 << 20;
/** Bytes queued toward the client at which we stop reading the device. */
export const PAUSE_DEVICE_AT_BYTES = 1 << 20;
/** ...and at or under which we read it again. */
export const RESUME_DEVICE_AT_BYTES = 256 << 10;
/**
 * Queued toward a client past this, the bridge ends: the device is paused
 * long before, so only ws's own control replies (pongs to a client that
 * pings and never reads) can grow it.
 */
export const MAX_QUEUED_TO_CLIENT_BYTES = 8 << 20;
/** After the client closed, how long the device side may take to finish before it is cut. */
const DEVICE_LINGER_MS = 5_000;

function closeReason(text: string): string {
  const bytes = Buffer.from(text);
  return bytes.length <= MAX_CLOSE_REASON_BYTES ? text : bytes.subarray(0, MAX_CLOSE_REASON_BYTES - 3).toString().replace(/\uFFFD*$/, '') + '...';
}

interface Bridge {
  ws: WebSocket;
  device?: net.Socket;
}

export class ConnectBridges {
  private server?: Promise<WebSocketServer>;
  private readonly open = new Set<Bridge>();
  /** Handshakes under way and bridges open: what MAX_BRIDGES counts. */
  private count = 0;
  private closed = false;

  constructor(private readonly ctx: TunnelApiContext) {}

  accept(req: IncomingMessage, socket: Duplex, head: Buffer, udid: string, port: number | undefined): void {
    if (this.closed) return refuseUpgrade(socket, { status: 503, why: 'the daemon is stopping' });
    if (this.count >= MAX_BRIDGES) return refuseUpgrade(socket, { status: 503, why: `${MAX_BRIDGES} bridges are open already` });
    this.count++;
    let counted = true;
    const release = () => {
      if (counted) this.count--;
      counted = false;
    };
    socket.once('close', release);
    this.websocketServer().then(
      (wss) => {
        if (this.closed || socket.destroyed) return socket.destroy();
        wss.handleUpgrade(req, socket, head, (ws) => this.bridge(ws, udid, port));
      },
      (err: unknown) => {
        this.ctx.log.warning(`tunneld API: websockets unavailable: ${(err as Error)?.message ?? String(err)}`);
        refuseUpgrade(socket, { status: 500, why: 'websockets are unavailable in this daemon' });
      },
    );
  }

  /** The daemon stops: every bridge ends now. */
  close(): void {
    this.closed = true;
    for (const b of this.open) {
      b.ws.terminate();
      b.device?.destroy();
    }
    this.open.clear();
  }

  private websocketServer(): Promise<WebSocketServer> {
    this.server ??= import('ws').then(
      ({ WebSocketServer }) =>
        new WebSocketServer({
          noServer: true,
          clientTracking: false,
          maxPayload: MAX_CLIENT_MESSAGE_BYTES,
          // Compression would let a small frame inflate into a large buffer, and costs CPU per byte.
          perMessageDeflate: false,
          // Text frames end the bridge anyway; their UTF-8 need not be checked first.
          skipUTF8Validation: true,
        }),
    );
    return this.server;
  }

  private bridge(ws: WebSocket, udid: string, requestedPort: number | undefined): void {
    const bridge: Bridge = { ws };
    this.open.add(bridge);
    ws.on('error', () => {
      // ws closes the connection itself (1002, 1009...); 'close' follows.
    });
    const found = findTunnel(this.ctx.tunnels, this.ctx.devices, udid);
    if (!found) {
      ws.once('close', () => this.open.delete(bridge));
      ws.close(WS_CLOSE_NO_TUNNEL, closeReason(`no tunnel exists for udid: ${udid}`));
      return;
    }
    const { tunnel } = found;
    const port = requestedPort ?? tunnel.serverRsdPort;
    const device = net.connect({ host: tunnel.preambleHost, port: tunnel.preamblePort, noDelay: true });
    bridge.device = device;
    device.write(encodeTunnelPreamble(tunnel.serverAddress, port));
    let fromDevice = 0;
    let clientGone = false;
    let over = false;

    // Ends the websocket side once. What we can tell of a failed connect
    // inside the tunnel: the preamble listener closes a refused (or timed
    // out) stream with nothing sent, so a device side that ends before its
    // first byte, while the client is still there, is reported as 4502. A
    // service that accepts and closes at once without a byte looks the same.
    const ended = (why: string, failed: boolean) => {
      if (over) return;
      over = true;
      if (clientGone) return;
      const code = fromDevice === 0 ? WS_CLOSE_CONNECT_FAILED : failed ? WS_CLOSE_INTERNAL_ERROR : WS_CLOSE_NORMAL;
      const prefix = code === WS_CLOSE_CONNECT_FAILED ? `connection to [${tunnel.serverAddress}]:${port} failed or closed before a byte: ` : '';
      ws.close(code, closeReason(prefix + why));
    };

    // Client -> device: a device that takes no more stops us reading the client.
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (over) return;
      if (!isBinary) {
        over = true;
        ws.close(WS_CLOSE_UNSUPPORTED_DATA, 'binary messages only');
        device.destroy();
        return;
      }
      if (!device.write(data)) ws.pause();
    });
    device.on('drain', () => ws.resume());

    // Device -> client: a client that reads no more stops us reading the device.
    const sent = (err?: Error) => {
      if (!err && device.isPaused() && ws.bufferedAmount <= RESUME_DEVICE_AT_BYTES) device.resume();
    };
    device.on('data', (chunk: Buffer) => {
      fromDevice += chunk.length;
      if (clientGone || over) return;
      ws.send(chunk, { binary: true }, sent);
      if (ws.bufferedAmount >= PAUSE_DEVICE_AT_BYTES) device.pause();
    });
    ws.on('ping', () => {
      if (ws.bufferedAmount > MAX_QUEUED_TO_CLIENT_BYTES) ws.terminate();
    });

    device.on('end', () => ended('the device closed the connection', false));
    device.on('error', (err) => ended(err.message, true));
    device.on('close', () => ended('closed', false));
    ws.once('close', () => {
      clientGone = true;
      this.open.delete(bridge);
      // What the client sent last still goes out, then FIN; the device gets a little while to finish.
      device.end();
      device.resume();
      setTimeout(() => device.destroy(), DEVICE_LINGER_MS).unref();
    });
  }
}
