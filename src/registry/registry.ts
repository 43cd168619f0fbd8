// The service registry: one bootstrap namespace per simulated device, so two
// phones can both offer com.apple.afc. Its limits are configuration, not a
// fixed table: a namespace holds `namesPerNamespace` names and the registry
// `maxNamespaces` namespaces, and going past either is NO_MEMORY (1105).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { BootstrapError } from './errors.js';
import { BootstrapNamespace, type RegistryWatcher } from './namespace.js';

export interface ServiceRegistryOptions {
  /** Default 1024. */
  namesPerNamespace?: number;
  /** Default 4096. */
  maxNamespaces?: number;
  /** Declared services listen on Unix sockets under DIR/<namespace index>/ (loopback TCP without it). */
  socketDir?: string;
  /** A relaunch of an on-demand service waits until this long after the previous one (default 1000 ms). */
  startThrottleMs?: number;
  /** Connections that may wait for one on-demand service (default 1024). */
  maxWaiting?: number;
}

export const DEFAULT_NAMES_PER_NAMESPACE = 1024;
export const DEFAULT_MAX_NAMESPACES = 4096;
export const DEFAULT_START_THROTTLE_MS = 1000;

export class ServiceRegistry {
  private readonly namespaces = new Map<string, BootstrapNamespace>();
  private readonly watchers = new Set<RegistryWatcher>();
  private created = 0;

  constructor(private readonly options: ServiceRegistryOptions = {}) {
    for (const [key, value] of Object.entries(options)) {
      if (key !== 'socketDir' && value !== undefined && (!Number.isInteger(value) || (value as number) < 0)) {
        throw new TypeError(`ServiceRegistry option ${key} must be a whole number, not ${String(value)}`);
      }
    }
  }

  /** The namespace `id` (a device's UDID), made on first use. */
  namespace(id: string): BootstrapNamespace {
    const existing = this.namespaces.get(id);
    if (existing) return existing;
    const max = this.options.maxNamespaces ?? DEFAULT_MAX_NAMESPACES;
    if (this.namespaces.size >= max) throw new BootstrapError('NO_MEMORY', `the registry holds its limit of ${max} namespaces`);
    let socketDir: string | undefined;
    if (this.options.socketDir) {
      // Indexes, not ids, keep socket paths short (sun_path is 108 bytes).
      socketDir = join(this.options.socketDir, String(++this.created));
      mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    }
    const ns = new BootstrapNamespace(id, {
      capacity: this.options.namesPerNamespace ?? DEFAULT_NAMES_PER_NAMESPACE,
      socketDir,
      startThrottleMs: this.options.startThrottleMs ?? DEFAULT_START_THROTTLE_MS,
      maxWaiting: this.options.maxWaiting,
    });
    for (const w of this.watchers) ns.watch(w);
    this.namespaces.set(id, ns);
    return ns;
  }

  get(id: string): BootstrapNamespace | undefined {
    return this.namespaces.get(id);
  }

  ids(): string[] {
    return [...this.namespaces.keys()];
  }

  /** Hears every event of every namespace, present and future. */
  watch(watcher: RegistryWatcher): () => void {
    this.watchers.add(watcher);
    const off = [...this.namespaces.values()].map((ns) => ns.watch(watcher));
    return () => {
      this.watchers.delete(watcher);
      for (const f of off) f();
    };
  }

  async closeNamespace(id: string): Promise<void> {
    const ns = this.namespaces.get(id);
    if (!ns) return;
    this.namespaces.delete(id);
    await ns.close();
  }

  async close(): Promise<void> {
    await Promise.all(this.ids().map((id) => this.closeNamespace(id)));
  }
}
