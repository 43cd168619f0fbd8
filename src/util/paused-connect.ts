// A TCP connection paused before it connects, so nothing the peer says is
// read in JS: its fd goes to the data plane, which reads it from the first
// byte (a network Connect's phone, a remote host's TLS). Rejects with the
// socket's error, or ETIMEDOUT after `timeoutMs`.
import { connect, type Socket } from 'node:net';

export function connectPaused(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.pause();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no TCP connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      // Until the handover an error here is the data plane's to find out.
      socket.on('error', () => undefined);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
