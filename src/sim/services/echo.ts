// Device port 7: echoes every byte back, for round-trip measurements.
import { createServer, type Server } from 'node:net';

import { listenService, type ServiceAddress } from './listen.js';

export async function startEcho(at?: ServiceAddress): Promise<{ server: Server; address: string | number }> {
  const server = createServer((socket) => {
    socket.setNoDelay?.(true);
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  return { server, address: await listenService(server, at) };
}
