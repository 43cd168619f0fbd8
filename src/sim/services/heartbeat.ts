// com.apple.mobile.heartbeat (reference §2.2): the device sends
// {Command: "Marco", Interval, SupportsSleepyTime} on connect and again
// `Interval` after each Polo; a host that does not answer Polo within twice
// the interval is disconnected.
import { createServer, type Server } from 'node:net';

import { listenService, type ServiceAddress } from './listen.js';
import { servePlist } from './plist-conn.js';

export const HEARTBEAT_SERVICE = 'com.apple.mobile.heartbeat';

export interface HeartbeatOptions {
  /** The Interval announced in Marco, in seconds (default 10). */
  interval?: number;
  /** Test hook: the real spacing between Marcos in ms (default interval × 1000). */
  intervalMs?: number;
  /** Hang up when no Polo has come this long after a Marco (default 2 × the spacing). */
  timeoutMs?: number;
}

export async function startHeartbeat(
  at?: ServiceAddress,
  options: HeartbeatOptions = {},
): Promise<{ server: Server; address: string | number }> {
  const interval = options.interval ?? 10;
  const periodMs = options.intervalMs ?? interval * 1000;
  const timeoutMs = options.timeoutMs ?? 2 * periodMs;
  const server = createServer((socket) => {
    let next: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const clear = () => {
      clearTimeout(next);
      clearTimeout(deadline);
    };
    const marco = () => {
      send({ Command: 'Marco', Interval: interval, SupportsSleepyTime: true });
      clearTimeout(deadline);
      deadline = setTimeout(() => socket.destroy(), timeoutMs);
    };
    const send = servePlist(socket, (msg) => {
      if (msg.Command !== 'Polo') return;
      clear();
      next = setTimeout(marco, periodMs);
    });
    socket.on('close', clear);
    marco();
  });
  return { server, address: await listenService(server, at) };
}
