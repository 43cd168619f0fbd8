// com.apple.mobile.notification_proxy and its pre-session twin
// com.apple.mobile.insecure_notification_proxy: a plist service where hosts
// ObserveNotification {Name} and PostNotification {Name}; every post (from a
// host or from the phone itself, via post()) reaches each connection that
// observes that name as {Command: "RelayNotification", Name}. Shutdown is
// answered with {Command: "ProxyDeath"} and the connection closes.
import { createServer, type Server, type Socket } from 'node:net';

import type { PlistDict } from '../../protocol/plist-codec.js';
import { listenService, type ServiceAddress } from './listen.js';
import { servePlist } from './plist-conn.js';

export const NOTIFICATION_PROXY_SERVICE = 'com.apple.mobile.notification_proxy';
export const INSECURE_NOTIFICATION_PROXY_SERVICE = 'com.apple.mobile.insecure_notification_proxy';

export interface NotificationProxy {
  server: Server;
  address: string | number;
  /** Relays `name` to every observer of it; returns how many connections got it. */
  post(name: string): number;
}

export async function startNotificationProxy(at?: ServiceAddress): Promise<NotificationProxy> {
  const observers = new Map<Socket, { names: Set<string>; send: (m: PlistDict) => void }>();
  const post = (name: string): number => {
    let n = 0;
    for (const o of observers.values()) {
      if (o.names.has(name)) {
        o.send({ Command: 'RelayNotification', Name: name });
        n++;
      }
    }
    return n;
  };
  const server = createServer((socket) => {
    const names = new Set<string>();
    const send = servePlist(socket, (msg) => {
      const name = typeof msg.Name === 'string' ? msg.Name : undefined;
      switch (msg.Command) {
        case 'ObserveNotification':
          if (name) names.add(name);
          break;
        case 'PostNotification':
          if (name) post(name);
          break;
        case 'Shutdown':
          observers.delete(socket);
          send({ Command: 'ProxyDeath' });
          socket.end();
          break;
        default:
          break;
      }
    });
    observers.set(socket, { names, send });
    socket.on('close', () => observers.delete(socket));
  });
  return { server, address: await listenService(server, at), post };
}
