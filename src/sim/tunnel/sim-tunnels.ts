// The phone's side of CoreDeviceProxy (reference lockdown-xpc §3.7, full
// tunnel mode). lockdownd's StartService maps a one-connection port whose
// TLS and CDTunnel framing the device-role engine runs natively; when the
// host's request frame arrives the engine emits tunnelHandshake, and this
// answers it as a phone does: the request checked, the MTU granted (the
// smaller of the request and the phone's maximum), a fresh ULA /64 per
// tunnel (the phone ::1, the host ::2), a serverRSDPort, and the tunnel's
// TCP ports: RSD there, every service its RSD Services list advertises (on
// the same port numbers), and the measuring services on 7, 9 and 19. A
// request that fails the checks ends that tunnel with a reason; nothing
// else is affected.
import { randomBytes, randomInt } from 'node:crypto';

import type { TunnelPortTarget } from '../../native/addon.js';
import type { MuxEngine, TunnelClosedEvent, TunnelRequestEvent } from '../../native/mux-engine.js';
import {
  buildServerHandshakeResponse,
  HOST_REQUESTED_MTU,
  MAX_TUNNEL_MTU,
  MIN_TUNNEL_MTU,
  parseClientHandshakeRequest,
  TUNNEL_NETMASK,
} from '../../protocol/cdtunnel.js';
import { formatIpv6 } from '../../protocol/ipv6.js';
import { DYNAMIC_PORT_MAX, DYNAMIC_PORT_MIN } from '../service-ports.js';

/** How strict the phone's side of a tunnel is (`tsmuxd sim --tunnel-*`). */
export interface SimTunnelOptions {
  /** The largest MTU the phone grants (default 16000, what hosts ask). */
  maxMtu?: number;
  /** Once loaded, drop packets from the host over this many bytes, as real phones do under sustained load. */
  dropOversize?: number;
  /** Drop this fraction (0..1) of the packets from the host, at random. */
  lossRate?: number;
}

/** Where a tunnel's TCP ports go on this machine. */
export interface SimTunnelEndpoints {
  /** RSD's loopback port: serverRSDPort goes there. */
  rsdPort: number;
  /** Every other tunnel port: the RSD Services list's and the measuring services. */
  ports: TunnelPortTarget[];
}

export interface SimTunnelInfo {
  tunnel: number;
  serverAddress: string;
  clientAddress: string;
  serverRsdPort: number;
  mtu: number;
}

/** What the sim tells its owner (JSON lines of `tsmuxd sim`). */
export type SimTunnelEvent =
  | ({ event: 'tunnel' } & SimTunnelInfo)
  | { event: 'tunnel-closed'; tunnel: number; code: string; reason: string }
  | { event: 'tunnel-refused'; tunnel: number; reason: string };

export interface SimTunnelsOptions extends SimTunnelOptions {
  engine: MuxEngine;
  /** The phone's current device-role link: tunnels of other phones on a shared engine are theirs. */
  handle: () => number;
  endpoints: () => Promise<SimTunnelEndpoints>;
  onEvent?: (event: SimTunnelEvent) => void;
}

export const DEFAULT_SIM_MAX_MTU = HOST_REQUESTED_MTU;

/** A unique-local /64 (RFC 4193: fd, a random 40-bit global id, a random subnet id), with its ::1 and ::2. */
export function randomTunnelAddresses(): { server: string; client: string } {
  const prefix = Buffer.concat([Buffer.from([0xfd]), randomBytes(7)]);
  const address = (last: number) => formatIpv6(Buffer.concat([prefix, Buffer.from([0, 0, 0, 0, 0, 0, 0, last])]));
  return { server: address(1), client: address(2) };
}

export function checkSimTunnelOptions(o: SimTunnelOptions): void {
  if (o.maxMtu !== undefined && (!Number.isInteger(o.maxMtu) || o.maxMtu < MIN_TUNNEL_MTU || o.maxMtu > MAX_TUNNEL_MTU)) {
    throw new RangeError(`the tunnel's maximum MTU is an integer in ${MIN_TUNNEL_MTU}..${MAX_TUNNEL_MTU}, not ${o.maxMtu}`);
  }
  if (o.dropOversize !== undefined && (!Number.isInteger(o.dropOversize) || o.dropOversize < MIN_TUNNEL_MTU)) {
    throw new RangeError(`dropping packets over ${o.dropOversize} bytes would drop what IPv6 must carry (${MIN_TUNNEL_MTU})`);
  }
  if (o.lossRate !== undefined && !(o.lossRate >= 0 && o.lossRate < 1)) {
    throw new RangeError(`the tunnel loss rate is a fraction in [0, 1), not ${o.lossRate}`);
  }
}

export class SimTunnels {
  private readonly live = new Map<number, SimTunnelInfo>();
  private readonly onRequest = (ev: TunnelRequestEvent) => this.answer(ev);
  private readonly onClosed = (ev: TunnelClosedEvent) => this.closed(ev);

  constructor(private readonly o: SimTunnelsOptions) {
    checkSimTunnelOptions(o);
    o.engine.on('tunnelHandshake', this.onRequest);
    o.engine.on('tunnelClosed', this.onClosed);
  }

  list(): SimTunnelInfo[] {
    return [...this.live.values()];
  }

  /** CoreDeviceProxy dies on the phone: every tunnel's connection is reset; returns how many there were. */
  dropAll(): number {
    const ids = [...this.live.keys()];
    for (const id of ids) this.o.engine.closeTunnel(id);
    return ids.length;
  }

  close(): void {
    this.o.engine.off('tunnelHandshake', this.onRequest);
    this.o.engine.off('tunnelClosed', this.onClosed);
    this.live.clear();
  }

  private answer(ev: TunnelRequestEvent): void {
    if (ev.handle !== this.o.handle()) return;
    this.configure(ev).catch((err: unknown) => this.refuse(ev.tunnel, (err as Error).message));
  }

  private async configure(ev: TunnelRequestEvent): Promise<void> {
    const request = parseClientHandshakeRequest(ev.body);
    const endpoints = await this.o.endpoints();
    const mtu = Math.min(request.mtu, this.o.maxMtu ?? DEFAULT_SIM_MAX_MTU);
    const { server, client } = randomTunnelAddresses();
    const taken = new Set(endpoints.ports.map((p) => p.port));
    let serverRsdPort: number;
    do serverRsdPort = randomInt(DYNAMIC_PORT_MIN, DYNAMIC_PORT_MAX + 1);
    while (taken.has(serverRsdPort));
    const response = buildServerHandshakeResponse({
      clientAddress: client,
      mtu,
      netmask: TUNNEL_NETMASK,
      serverAddress: server,
      serverRSDPort: serverRsdPort,
    });
    this.o.engine.configureTunnel(ev.tunnel, {
      localAddress: server,
      peerAddress: client,
      mtu,
      response,
      ports: [{ port: serverRsdPort, targetPort: endpoints.rsdPort }, ...endpoints.ports],
      ...(this.o.dropOversize !== undefined ? { dropOversize: this.o.dropOversize } : {}),
      ...(this.o.lossRate !== undefined ? { lossRate: this.o.lossRate } : {}),
    });
    const info = { tunnel: ev.tunnel, serverAddress: server, clientAddress: client, serverRsdPort, mtu };
    this.live.set(ev.tunnel, info);
    this.o.onEvent?.({ event: 'tunnel', ...info });
  }

  private refuse(tunnel: number, reason: string): void {
    this.o.onEvent?.({ event: 'tunnel-refused', tunnel, reason });
    try {
      this.o.engine.closeTunnel(tunnel);
    } catch {
      // the host went first
    }
  }

  private closed(ev: TunnelClosedEvent): void {
    if (!this.live.delete(ev.tunnel)) return;
    this.o.onEvent?.({ event: 'tunnel-closed', tunnel: ev.tunnel, code: ev.code, reason: ev.reason });
  }
}
