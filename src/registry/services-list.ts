// The Services dictionary of an RSD peer-info message (reference §3.3),
// rendered from a namespace: name -> {Entitlement, Port, Properties}, the
// port as a decimal string (go-ios parses it with ParseInt) and an
// Entitlement on every entry (idevice skips entries without one). Which
// device port serves a name is the RSD side's business, so it is asked.
import type { PlistDict } from '../protocol/plist-codec.js';
import type { BootstrapNamespace, ServiceInfo } from './namespace.js';

/** What an RSD entry shows when the service names no entitlement of its own. */
export const DEFAULT_RSD_ENTITLEMENT = 'com.apple.mobile.lockdown.remote.trusted';

export interface ServiceListing {
  name: string;
  port: number;
  entitlement: string;
  properties: PlistDict;
}

/** The device port serving `service`, or undefined to leave it out. */
export type PortFor = (service: ServiceInfo) => number | undefined;

/**
 * Every reachable name (checked in, registered, or on demand: connecting
 * launches it) with its port; names without one are left out. By default a
 * name's port is its fixed devicePort.
 */
export function serviceListings(namespace: BootstrapNamespace, portFor: PortFor = (s) => s.devicePort): ServiceListing[] {
  const out: ServiceListing[] = [];
  for (const service of namespace.list()) {
    if (service.status === 'inactive') continue;
    const port = portFor(service);
    if (port === undefined) continue;
    out.push({
      name: service.name,
      port,
      entitlement: service.entitlement ?? DEFAULT_RSD_ENTITLEMENT,
      properties: service.properties ?? {},
    });
  }
  return out;
}

/** The peer-info Services dict. */
export function rsdServicesDict(namespace: BootstrapNamespace, portFor?: PortFor): PlistDict {
  const dict: PlistDict = {};
  for (const l of serviceListings(namespace, portFor)) {
    dict[l.name] = { Entitlement: l.entitlement, Port: String(l.port), Properties: l.properties };
  }
  return dict;
}
