// RSDCheckin shims (reference §3.3): the "*.shim.remote" services RSD lists.
// A host connects over plain TCP, sends {Request: "RSDCheckin", Label,
// ProtocolVersion} in lockdown framing, gets {Request: "RSDCheckin"} and
// {Request: "StartService"}, and then speaks the old service protocol with
// no TLS. The shim answers the checkin and then joins the connection to the
// sim's own service (lockdownd, heartbeat, AFC...), so the service logic is
// the one the lockdown path uses.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

import { decodeBody, encodeFrame, FrameReader } from '../../lockdown/framing.js';
import { isPlistDict } from '../../protocol/plist-codec.js';

/** A checkin is a few hundred bytes; the escrow bag keeps it well under this. */
const MAX_CHECKIN_FRAME = 64 * 1024;

export interface Shim {
  server: Server;
  port: number;
  close(): Promise<void>;
}

function joinTo(socket: Socket, target: string | number, rest: Buffer): void {
  const upstream = typeof target === 'string' ? connect(target) : connect(target, '127.0.0.1');
  if (rest.length) upstream.write(rest);
  socket.pipe(upstream);
  upstream.pipe(socket);
  const close = () => {
    socket.destroy();
    upstream.destroy();
  };
  upstream.on('error', close);
  upstream.on('close', close);
  socket.on('close', close);
}

/** A shim on a loopback port in front of a service listening at `target` (a TCP port or a socket path). */
export async function startShim(target: string | number): Promise<Shim> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const reader = new FrameReader(MAX_CHECKIN_FRAME);
    const onData = (chunk: Buffer) => {
      try {
        reader.feed(chunk);
        const body = reader.next();
        if (!body) return;
        socket.off('data', onData);
        socket.pause();
        const request = decodeBody(body);
        const verb = isPlistDict(request) ? request.Request : undefined;
        if (verb !== 'RSDCheckin') {
          socket.end(encodeFrame({ Request: typeof verb === 'string' ? verb : '', Error: 'InvalidRequest' }));
          return;
        }
        socket.write(encodeFrame({ Request: 'RSDCheckin' }));
        socket.write(encodeFrame({ Request: 'StartService' }));
        joinTo(socket, target, reader.drain());
        socket.resume();
      } catch {
        socket.destroy();
      }
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
