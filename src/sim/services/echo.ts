// Device port 7: echoes every byte back, for round-trip measurements.
import { createServer, type AddressInfo, type Server } from 'node:net';

export async function startEcho(host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}
