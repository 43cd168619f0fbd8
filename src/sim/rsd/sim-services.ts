// The sim's RSD Services list, from the phone's namespace in the service
// registry (the same table lockdownd's StartService uses). lockdownd itself is listed as com.apple.mobile.lockdown.remote.trusted;
// each plaintext lockdown service as "<name>.shim.remote". Shims start on
// first listing and are shared by later connections.
import type { BootstrapNamespace } from '../../registry/index.js';
import { dict, int64 } from '../../xpc/values.js';
import type { RsdServiceEntry, RsdServiceProvider } from '../../xpc/rsd.js';
import { startShim, type Shim } from './shims.js';

export const REMOTE_LOCKDOWN_SERVICE = 'com.apple.mobile.lockdown.remote.trusted';
export const shimName = (service: string): string => `${service}.shim.remote`;

export interface SimRsdServices {
  provider: RsdServiceProvider;
  close(): Promise<void>;
}

export function simRsdServices(namespace: BootstrapNamespace, lockdownAddress: string | number): SimRsdServices {
  const shims = new Map<string, Promise<Shim>>();
  const shimFor = (name: string, target: string | number) => {
    let s = shims.get(name);
    if (!s) shims.set(name, (s = startShim(target)));
    return s;
  };
  const entry = async (name: string, target: string | number): Promise<RsdServiceEntry> => ({
    name,
    port: (await shimFor(name, target)).port,
    properties: dict({ UsesRemoteXPC: false, ServiceVersion: int64(1) }),
  });
  return {
    provider: async () => {
      const listed = [entry(REMOTE_LOCKDOWN_SERVICE, lockdownAddress)];
      // Services behind service TLS (afc2) have no shim: a shim speaks plaintext.
      // The measuring services (fixed device ports) are not lockdown services.
      for (const service of namespace.list()) {
        if (!service.tls && service.devicePort === undefined) listed.push(entry(shimName(service.name), service.address));
      }
      return Promise.all(listed);
    },
    close: async () => {
      const all = await Promise.allSettled(shims.values());
      await Promise.all(all.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)));
    },
  };
}
