// The simulated phone on the network: what a host reaches at the phone's IP
// address over TCP, as on Wi-Fi. lockdownd on 62078, the measuring services
// on their fixed ports, and every one-connection port StartService hands out
// (the same ports the mux side gets, each serving one connection) are
// listened for on that address, and each connection is relayed to where the
// service really listens (a loopback port or a Unix path).
//
// `off()` is the phone leaving the network: listeners close, and the
// connections already open go silent (nothing relayed either way, no FIN),
// so a host notices only by its heartbeat's deadline, as with a real phone
// walking out of range. `on()` comes back: the silent connections are
// dropped (a phone that returns has lost them) and the listeners reopen.
import { connect, createServer, type Server, type Socket } from 'node:net';

import type { PortTarget } from '../../native/addon.js';
import type { ServicePorts } from '../service-ports.js';

/** A one-connection port nobody came for is withdrawn after this long (as on the mux side). */
const ONE_SHOT_TTL_MS = 30_000;
/** Connections relayed at once; more are refused, so a flood holds nothing. */
const MAX_RELAYS = 256;

export interface NetworkFrontOptions {
  /** The phone's address on the network (IPv4 or IPv6). */
  address: string;
  /** Device port -> where the service listens (a TCP port on 127.0.0.1 or a Unix path). */
  fixed: Record<number, string | number>;
  servicePorts: ServicePorts;
  log?: (text: string) => void;
}

interface Relay {
  outside: Socket;
  inside: Socket;
}

export class NetworkFront {
  private readonly listeners = new Map<number, Server>();
  private readonly oneShot = new Map<number, { target: PortTarget; timer: NodeJS.Timeout }>();
  private readonly relays = new Set<Relay>();
  private unwatch?: () => void;
  private online = false;
  private closed = false;

  private constructor(private readonly o: NetworkFrontOptions) {}

  static async start(options: NetworkFrontOptions): Promise<NetworkFront> {
    const front = new NetworkFront(options);
    front.unwatch = options.servicePorts.watch((port, target) => {
      if (target) front.openOneShot(port, target);
      else front.withdraw(port);
    });
    return front;
  }

  get isOnline(): boolean {
    return this.online;
  }

  /** Back on the network: listeners on the fixed ports. */
  async on(): Promise<void> {
    if (this.online || this.closed) return;
    for (const r of this.relays) this.drop(r, true);
    this.online = true;
    for (const [port, where] of Object.entries(this.o.fixed)) {
      const target: PortTarget = typeof where === 'string' ? { path: where } : { targetPort: where };
      await this.listen(Number(port), target, false);
    }
  }

  /** Off the network: nothing answers, nothing open moves. */
  async off(): Promise<void> {
    if (!this.online) return;
    this.online = false;
    for (const r of this.relays) {
      r.outside.pause();
      r.inside.pause();
      r.inside.unpipe(r.outside);
      r.outside.unpipe(r.inside);
    }
    for (const { timer } of this.oneShot.values()) clearTimeout(timer);
    this.oneShot.clear();
    await this.closeListeners();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unwatch?.();
    await this.off();
    for (const r of this.relays) this.drop(r, true);
  }

  private openOneShot(port: number, target: PortTarget): void {
    if (!this.online) return;
    const timer = setTimeout(() => this.withdraw(port), ONE_SHOT_TTL_MS);
    timer.unref();
    this.oneShot.set(port, { target, timer });
    this.listen(port, target, true).catch((err: Error) => {
      this.o.log?.(`wifi: cannot listen on ${this.o.address}:${port}: ${err.message}`);
      this.withdraw(port);
    });
  }

  private withdraw(port: number): void {
    const entry = this.oneShot.get(port);
    if (entry) clearTimeout(entry.timer);
    this.oneShot.delete(port);
    const server = this.listeners.get(port);
    if (!server) return;
    this.listeners.delete(port);
    server.close();
  }

  private listen(port: number, target: PortTarget, once: boolean): Promise<void> {
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (outside) => {
      if (once) this.withdraw(port);
      this.relay(outside, target);
    });
    this.listeners.set(port, server);
    return new Promise((resolve, reject) => {
      server.once('error', (err) => {
        this.listeners.delete(port);
        reject(err);
      });
      server.listen({ port, host: this.o.address, exclusive: true }, () => resolve());
    });
  }

  private relay(outside: Socket, target: PortTarget): void {
    if (!this.online || this.relays.size >= MAX_RELAYS) {
      outside.destroy();
      return;
    }
    if (target.builtin || (target.path === undefined && target.targetPort === undefined)) {
      outside.destroy();  // in-engine services have listeners of their own in `fixed`
      return;
    }
    // Half-open both ways, as TCP is: a host's FIN reaches the service as
    // EOF and what the service still sends goes back (pipe() passes each end
    // on), instead of node ending our side at the peer's FIN.
    const inside =
      target.path !== undefined
        ? connect({ path: target.path, allowHalfOpen: true })
        : connect({ port: target.targetPort!, host: target.host ?? '127.0.0.1', allowHalfOpen: true });
    const r: Relay = { outside, inside };
    this.relays.add(r);
    // An error ends both; a clean close of both just forgets the relay.
    const failed = () => this.drop(r);
    outside.on('error', failed);
    inside.on('error', failed);
    const closed = () => {
      if (outside.destroyed && inside.destroyed) this.relays.delete(r);
      else if (!this.online) inside.destroy();  // off the network: the host's side stays silent
    };
    outside.on('close', closed);
    inside.on('close', closed);
    inside.once('connect', () => {
      if (!this.online) return;
      outside.pipe(inside);
      inside.pipe(outside);
      outside.resume();
    });
  }

  /**
   * Off the network, a service hanging up reaches nobody: the host's side
   * stays open and silent until the phone is back (or closed).
   */
  private drop(r: Relay, always = false): void {
    if (!this.relays.has(r)) return;
    if (!this.online && !always) {
      r.inside.destroy();
      return;
    }
    this.relays.delete(r);
    r.outside.destroy();
    r.inside.destroy();
  }

  /** Stops accepting at once; server.close()'s callback would wait for the (silent) connections too. */
  private async closeListeners(): Promise<void> {
    const servers = [...this.listeners.values()];
    this.listeners.clear();
    for (const s of servers) s.close();
  }
}
