// The daemon's two tunnel APIs started side by side (docs/tunnel.md, "The
// tunneld and go-ios APIs"). Neither is needed to serve usbmuxd clients, so
// neither may stop the daemon: an address that cannot be had (a real
// tunneld or go-ios agent holding the port) is one warning, and the daemon
// goes on without that API.
import type { DeviceTable } from '../devices/device-table.js';
import type { TunnelManager } from '../tunnel/tunnel-manager.js';
import type { Logger } from '../util/log.js';
import { formatApiAddress, parseApiAddress, type ApiAddress } from './api-address.js';
import { GoIosApi } from './go-ios-api.js';
import type { GuardedServer } from './http-guard.js';
import { TunneldApi } from './tunneld-api.js';

export interface TunnelApiOptions {
  tunnels: TunnelManager;
  devices: DeviceTable;
  log: Logger;
  /** pymobiledevice3's tunneld API: HOST:PORT on loopback, or off / undefined. */
  tunneldApi?: string;
  /** go-ios's agent API, likewise. */
  goIosApi?: string;
}

/** Where each API listens (`127.0.0.1:49151`), absent when it is off or could not listen. */
export interface TunnelApiAddresses {
  tunneld?: string;
  goIos?: string;
}

/** Both addresses checked before anything listens: a bad one is the caller's mistake, not a warning. */
export function checkTunnelApiOptions(o: Pick<TunnelApiOptions, 'tunneldApi' | 'goIosApi'>): { tunneld?: ApiAddress; goIos?: ApiAddress } {
  const parse = (text: string | undefined, what: string) => {
    if (text === undefined) return undefined;
    try {
      return parseApiAddress(text);
    } catch (err) {
      throw new RangeError(`${what}: ${(err as Error).message}`);
    }
  };
  return { tunneld: parse(o.tunneldApi, 'the tunneld API address'), goIos: parse(o.goIosApi, 'the go-ios API address') };
}

interface Api {
  close(): Promise<void>;
  http: GuardedServer;
}

export class TunnelApis {
  private constructor(
    private readonly running: Api[],
    readonly addresses: TunnelApiAddresses,
  ) {}

  static async start(o: TunnelApiOptions): Promise<TunnelApis> {
    const wanted = checkTunnelApiOptions(o);
    const ctx = { tunnels: o.tunnels, devices: o.devices, log: o.log };
    const running: Api[] = [];
    const addresses: TunnelApiAddresses = {};
    const tryStart = async (make: () => Api, at: ApiAddress | undefined, name: string, holder: string): Promise<string | undefined> => {
      if (!at) return undefined;
      const api = make();
      try {
        const bound = formatApiAddress(await api.http.listen(at));
        running.push(api);
        o.log.notice(`${name} on http://${bound}`);
        return bound;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const why = e.code === 'EADDRINUSE' ? `the port is in use (${holder}?)` : e.message;
        o.log.warning(`${name} cannot listen on ${formatApiAddress(at)}: ${why}; going on without it`);
        await api.close();
        return undefined;
      }
    };
    addresses.tunneld = await tryStart(() => new TunneldApi(ctx), wanted.tunneld, "pymobiledevice3's tunneld API", "is pymobiledevice3's tunneld running");
    addresses.goIos = await tryStart(() => new GoIosApi(ctx), wanted.goIos, "go-ios's agent API", "is go-ios's tunnel agent running");
    return new TunnelApis(running, addresses);
  }

  async close(): Promise<void> {
    await Promise.all(this.running.map((api) => api.close()));
  }
}
