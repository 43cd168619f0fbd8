// One bootstrap namespace: the services of one simulated device. launchd's
// verbs over it: declare (a MachServices entry, optionally on demand),
// checkIn (the owner claims a declared name and gets its connections),
// register (an ad-hoc name with its own listener), lookUp and lookUpArray.
// Every name has an owner; when the owner dies its names are freed (a
// declared name goes back to waiting for a launch) and watchers hear of it.
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import type { PlistDict } from '../protocol/plist-codec.js';
import { BootstrapError, checkName, MAX_LOOKUP_COUNT } from './errors.js';
import type { ServiceOwner } from './owner.js';
import { SocketFront, type ConnectionHandler } from './socket-front.js';

/** Darwin's BOOTSTRAP_STATUS_*: INACTIVE 0, ACTIVE 1, ON_DEMAND 2. */
export type ServiceStatus = 'inactive' | 'active' | 'onDemand';
export const STATUS_CODES: Record<ServiceStatus, number> = { inactive: 0, active: 1, onDemand: 2 };

/** How a host talks to the service once connected (reference §1.7.3). */
export type ServiceTls = 'none' | 'full' | 'handshakeOnly';

/** What a service says about itself, for lockdownd's StartService and RSD's Services list. */
export interface ServiceDescription {
  tls?: ServiceTls;
  /** lockdownd hands it out without a session (insecure_notification_proxy). */
  withoutSession?: boolean;
  /** RSD: the entitlement a host needs (every RSD entry carries one). */
  entitlement?: string;
  /** RSD: UsesRemoteXPC, ServiceVersion, Features... */
  properties?: PlistDict;
  /** A fixed device port (the test services on 7, 9, 19); others get ports from whoever serves them. */
  devicePort?: number;
}

export interface ServiceInfo extends ServiceDescription {
  name: string;
  status: ServiceStatus;
  /** Where to connect: a loopback TCP port or a Unix socket path. */
  address: string | number;
  /** Declared (the registry holds the socket) rather than registered ad hoc. */
  declared: boolean;
  owner?: string;
}

/** Starts an on-demand service; it is expected to checkIn() the name. */
export type OnDemandStart = (name: string, namespace: BootstrapNamespace) => Promise<void> | void;

export type RegistryEvent =
  | { type: 'declared' | 'registered' | 'active' | 'starting'; name: string; owner?: string }
  | { type: 'unregistered' | 'inactive'; name: string; owner: string; reason: string }
  | { type: 'startFailed'; name: string; reason: string }
  | { type: 'overflow'; name: string; waiting: number };

export type RegistryWatcher = (event: RegistryEvent, namespace: BootstrapNamespace) => void;

export interface NamespaceOptions {
  /** Names this namespace holds at most (NO_MEMORY beyond). */
  capacity: number;
  /** Declared services listen on Unix sockets here; loopback TCP without it. */
  socketDir?: string;
  /** A relaunch waits until this long after the previous launch (launchd's ThrottleInterval). */
  startThrottleMs: number;
  /** Connections that may wait for one on-demand service. */
  maxWaiting?: number;
}

interface Entry extends ServiceDescription {
  name: string;
  declared: boolean;
  address: string | number;
  front?: SocketFront;
  start?: OnDemandStart;
  owner?: ServiceOwner;
  releaseOwner?: () => void;
  starting?: Promise<void>;
  lastStart: number;
}

export class BootstrapNamespace {
  private readonly entries = new Map<string, Entry>();
  private readonly watchers = new Set<RegistryWatcher>();
  private socketCount = 0;
  private closed = false;

  constructor(
    readonly id: string,
    private readonly options: NamespaceOptions,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get capacity(): number {
    return this.options.capacity;
  }

  /** Calls `watcher` on every change of every name here; returns an unsubscribe. */
  watch(watcher: RegistryWatcher): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  /**
   * Declares `name` and opens its socket now. With `start` the service is on
   * demand: the first lookUp (or connection) launches it, and whoever
   * connects meanwhile waits for its checkIn.
   */
  async declare(name: string, options: ServiceDescription & { start?: OnDemandStart } = {}): Promise<ServiceInfo> {
    const { start, ...description } = options;
    const entry = this.reserve(name, { ...description, declared: true, address: 0, start, lastStart: -Infinity });
    const at = this.options.socketDir ? join(this.options.socketDir, `service-${++this.socketCount}.sock`) : undefined;
    try {
      entry.front = await SocketFront.open(at, {
        maxWaiting: this.options.maxWaiting,
        onWaiting: () => this.launchIfIdle(entry),
        onOverflow: () => this.emit({ type: 'overflow', name, waiting: entry.front?.waitingCount ?? 0 }),
      });
    } catch (err) {
      this.entries.delete(name);
      throw err;
    }
    if (this.closed || this.entries.get(name) !== entry) {
      await entry.front.close();
      throw new BootstrapError('UNKNOWN_SERVICE', `namespace ${this.id} closed while ${name} was declared`, name);
    }
    entry.address = entry.front.address;
    this.emit({ type: 'declared', name });
    return this.info(entry);
  }

  /** The owner of a declared name claims it: waiting and future connections go to `handler`. */
  checkIn(name: string, owner: ServiceOwner, handler: ConnectionHandler): ServiceInfo {
    checkName(name);
    const entry = this.entries.get(name);
    if (!entry || (entry.declared && !entry.front)) {
      throw new BootstrapError('UNKNOWN_SERVICE', `${name} is not declared in ${this.id}`, name);
    }
    if (!entry.declared || entry.owner) {
      throw new BootstrapError('SERVICE_ACTIVE', `${name} is already checked in by ${entry.owner?.label ?? 'its registrant'}`, name);
    }
    this.own(entry, owner);
    if (!entry.owner) return this.info(entry);  // the owner was dead already
    entry.front!.serve(handler);
    this.emit({ type: 'active', name, owner: owner.label });
    return this.info(entry);
  }

  /** An ad-hoc name for a service with its own listener at `address`. */
  register(name: string, owner: ServiceOwner, address: string | number, description: ServiceDescription = {}): ServiceInfo {
    const entry = this.reserve(name, { ...description, declared: false, address, lastStart: -Infinity });
    this.emit({ type: 'registered', name, owner: owner.label });
    this.own(entry, owner);
    return this.info(entry);
  }

  /** Gives up a name (only its owner may): a registered name goes, a declared one waits for a launch again. */
  release(name: string, owner: ServiceOwner): void {
    checkName(name);
    const entry = this.entries.get(name);
    if (!entry) throw new BootstrapError('UNKNOWN_SERVICE', `${name} is not in ${this.id}`, name);
    if (entry.owner !== owner) throw new BootstrapError('NOT_PRIVILEGED', `${name} belongs to someone else`, name);
    this.free(entry, 'released');
  }

  /** Where `name` is; an idle on-demand service is launched, and connections wait for it. */
  lookUp(name: string): ServiceInfo {
    checkName(name);
    const entry = this.entries.get(name);
    if (!entry || (entry.declared && !entry.front)) {
      throw new BootstrapError('UNKNOWN_SERVICE', `no service ${name} in ${this.id}`, name);
    }
    this.launchIfIdle(entry);
    return this.info(entry);
  }

  /** Up to 20 names at once; unknown names come back null, as bootstrap_look_up_array leaves their port null. */
  lookUpArray(names: readonly string[]): Array<ServiceInfo | null> {
    if (!Array.isArray(names)) throw new BootstrapError('BAD_COUNT', 'lookUpArray needs an array of names');
    if (names.length > MAX_LOOKUP_COUNT) {
      throw new BootstrapError('BAD_COUNT', `${names.length} names in one lookup; at most ${MAX_LOOKUP_COUNT}`);
    }
    for (const name of names) checkName(name);
    return names.map((name) => (this.find(name) ? this.lookUp(name) : null));
  }

  /** What lookUp would say, without launching anything. */
  find(name: string): ServiceInfo | undefined {
    const entry = this.entries.get(name);
    return entry && (!entry.declared || entry.front) ? this.info(entry) : undefined;
  }

  /** Every name, sorted. */
  list(): ServiceInfo[] {
    return [...this.entries.values()]
      .filter((e) => !e.declared || e.front)
      .map((e) => this.info(e))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Closes every declared socket and forgets every name (owners live on). */
  async close(): Promise<void> {
    this.closed = true;
    const entries = [...this.entries.values()];
    this.entries.clear();
    for (const e of entries) e.releaseOwner?.();
    await Promise.all(entries.map((e) => e.front?.close()));
    this.watchers.clear();
  }

  private reserve(name: string, entry: Omit<Entry, 'name'>): Entry {
    checkName(name);
    if (this.closed) throw new BootstrapError('UNKNOWN_SERVICE', `namespace ${this.id} is closed`, name);
    const held = this.entries.get(name);
    if (held) throw new BootstrapError('NAME_IN_USE', `${name} is already ${held.declared ? 'declared' : 'registered'} in ${this.id}`, name);
    if (this.entries.size >= this.options.capacity) {
      throw new BootstrapError('NO_MEMORY', `namespace ${this.id} holds its limit of ${this.options.capacity} names`, name);
    }
    const full: Entry = { name, ...entry };
    this.entries.set(name, full);
    return full;
  }

  private own(entry: Entry, owner: ServiceOwner): void {
    entry.owner = owner;
    entry.releaseOwner = owner.onDeath((reason) => this.free(entry, reason));
  }

  /** The owner is gone: the name goes (registered) or goes back to waiting (declared). */
  private free(entry: Entry, reason: string): void {
    const owner = entry.owner;
    if (!owner || this.entries.get(entry.name) !== entry) return;
    entry.releaseOwner?.();
    entry.owner = undefined;
    entry.releaseOwner = undefined;
    if (entry.declared) {
      entry.front?.unserve();
      this.emit({ type: 'inactive', name: entry.name, owner: owner.label, reason });
      // Someone already waits: launch again (throttled).
      if (entry.front?.waitingCount) this.launchIfIdle(entry);
    } else {
      this.entries.delete(entry.name);
      this.emit({ type: 'unregistered', name: entry.name, owner: owner.label, reason });
    }
  }

  private launchIfIdle(entry: Entry): void {
    if (!entry.declared || !entry.start || entry.owner || entry.starting || this.closed) return;
    const start = entry.start;
    const wait = Math.max(0, entry.lastStart + this.options.startThrottleMs - Date.now());
    entry.starting = (async () => {
      if (wait > 0) await delay(wait);
      if (this.closed || entry.owner) return;
      entry.lastStart = Date.now();
      this.emit({ type: 'starting', name: entry.name });
      await start(entry.name, this);
      if (!entry.owner && this.entries.get(entry.name) === entry) throw new Error('it started but did not check in');
    })()
      .catch((err: unknown) => {
        // Nobody will serve those who wait: close them rather than leave them hanging.
        const dropped = entry.front?.dropWaiting() ?? 0;
        const why = err instanceof Error ? err.message : String(err);
        this.emit({ type: 'startFailed', name: entry.name, reason: `${why}${dropped ? ` (${dropped} waiting connection(s) closed)` : ''}` });
      })
      .finally(() => {
        entry.starting = undefined;
      });
  }

  private info(entry: Entry): ServiceInfo {
    const { name, declared, address, tls, withoutSession, entitlement, properties, devicePort } = entry;
    const status: ServiceStatus = entry.owner ? 'active' : entry.start ? 'onDemand' : 'inactive';
    const info: ServiceInfo = { name, status, address, declared };
    if (entry.owner) info.owner = entry.owner.label;
    if (tls !== undefined) info.tls = tls;
    if (withoutSession !== undefined) info.withoutSession = withoutSession;
    if (entitlement !== undefined) info.entitlement = entitlement;
    if (properties !== undefined) info.properties = properties;
    if (devicePort !== undefined) info.devicePort = devicePort;
    return info;
  }

  private emit(event: RegistryEvent): void {
    for (const w of this.watchers) {
      try {
        w(event, this);
      } catch {
        // a watcher's failure is its own
      }
    }
  }
}
