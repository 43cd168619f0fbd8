// launchd's trick for on-demand services: the registry, not the service,
// owns the listening socket. Connections that arrive before the service has
// checked in wait here, paused, and are handed over in order once it has; a
// service that dies leaves the socket listening, so the next caller waits
// for the relaunch instead of being refused. Nothing is lost in between.
import { lstatSync, unlinkSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type ConnectionHandler = (socket: Socket) => void;

/** Connections held while no service is checked in, at most. */
export const DEFAULT_MAX_WAITING = 1024;

export class SocketFront {
  private handler?: ConnectionHandler;
  private readonly waiting: Socket[] = [];
  private readonly forget = new Map<Socket, () => void>();
  private readonly server: Server;
  address: string | number = 0;

  private constructor(
    private readonly maxWaiting: number,
    /** A connection arrived while nobody was checked in. */
    private readonly onWaiting: () => void,
    /** A connection was refused because too many wait. */
    private readonly onOverflow: () => void,
  ) {
    this.server = createServer((socket) => this.accept(socket));
  }

  static async open(
    at: string | undefined,
    options: { maxWaiting?: number; onWaiting: () => void; onOverflow: () => void },
  ): Promise<SocketFront> {
    const front = new SocketFront(options.maxWaiting ?? DEFAULT_MAX_WAITING, options.onWaiting, options.onOverflow);
    // A socket file left by a killed predecessor in this namespace's own directory.
    if (at) removeSocketFile(at);
    await new Promise<void>((resolve, reject) => {
      front.server.once('error', reject);
      if (at) front.server.listen(at, resolve);
      else front.server.listen(0, '127.0.0.1', resolve);
    });
    front.address = at ?? (front.server.address() as AddressInfo).port;
    return front;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** A service checked in: it gets the waiting connections, in arrival order, then every new one. */
  serve(handler: ConnectionHandler): void {
    this.handler = handler;
    const waiting = this.waiting.splice(0);
    for (const socket of waiting) {
      const forget = this.forget.get(socket);
      this.forget.delete(socket);
      if (forget) socket.off('close', forget);
      if (socket.destroyed) continue;
      socket.resume();
      handler(socket);
    }
  }

  /** The service went away: connections wait again. */
  unserve(): void {
    this.handler = undefined;
  }

  /** Closes every waiting connection (the service could not be started); returns how many. */
  dropWaiting(): number {
    const waiting = this.waiting.splice(0);
    for (const socket of waiting) socket.destroy();
    return waiting.length;
  }

  /** Stops listening and drops whoever still waits. */
  async close(): Promise<void> {
    this.handler = undefined;
    this.forget.clear();
    for (const socket of this.waiting.splice(0)) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    if (this.handler) return this.handler(socket);
    if (this.waiting.length >= this.maxWaiting) {
      socket.destroy();
      this.onOverflow();
      return;
    }
    socket.pause();
    socket.on('error', () => socket.destroy());
    const forget = () => {
      this.forget.delete(socket);
      const i = this.waiting.indexOf(socket);
      if (i >= 0) this.waiting.splice(i, 1);
    };
    this.forget.set(socket, forget);
    socket.once('close', forget);
    this.waiting.push(socket);
    this.onWaiting();
  }
}

function removeSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
}
