// The device ports StartService hands out. A phone gives each StartService a
// fresh port in the dynamic range that serves one connection (reference
// §1.9 item 8; captured replies show 51126, 51793, 49316), so a host that
// caches a port, or connects twice, fails here as it would on a phone.
import { randomInt } from 'node:crypto';

import type { PortTarget } from '../native/addon.js';

export const DYNAMIC_PORT_MIN = 49152;
export const DYNAMIC_PORT_MAX = 65535;
/** A port nobody connected to is withdrawn after this long. */
export const DEFAULT_PORT_TTL_MS = 30_000;

/** Adds (target given) or removes a device-port mapping in the device-role mux. */
export type MapPort = (port: number, target?: PortTarget) => void;

export class ServicePorts {
  private readonly issued = new Map<number, NodeJS.Timeout>();
  /** Also told of every port opened and withdrawn: the phone's Wi-Fi side (src/sim/wifi). */
  private readonly watchers = new Set<MapPort>();

  constructor(
    private mapPort: MapPort | undefined,
    private readonly ttlMs = DEFAULT_PORT_TTL_MS,
  ) {}

  /** The mux link changed (replug): ports issued on the old one are gone. */
  attach(mapPort: MapPort | undefined): void {
    this.clear();
    this.mapPort = mapPort;
  }

  /** A fresh one-connection port to `target`. */
  open(target: PortTarget): number {
    const span = DYNAMIC_PORT_MAX - DYNAMIC_PORT_MIN + 1;
    if (this.issued.size >= span) throw new Error('every dynamic port is issued');
    let port: number;
    do port = DYNAMIC_PORT_MIN + randomInt(span);
    while (this.issued.has(port));
    this.mapPort?.(port, { ...target, once: true });
    for (const w of this.watchers) w(port, { ...target, once: true });
    // The native side forgets a once-mapping when it is used; the timer only
    // withdraws ports nobody came for, and keeps a used port from being
    // handed out again too soon.
    const timer = setTimeout(() => {
      this.issued.delete(port);
      this.mapPort?.(port);
      for (const w of this.watchers) w(port);
    }, this.ttlMs);
    timer.unref();
    this.issued.set(port, timer);
    return port;
  }

  /** Hears of every port from now on (the same one-connection ports over the network); returns its removal. */
  watch(watcher: MapPort): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  get size(): number {
    return this.issued.size;
  }

  clear(): void {
    for (const timer of this.issued.values()) clearTimeout(timer);
    this.issued.clear();
  }
}
