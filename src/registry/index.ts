export { BootstrapError, BOOTSTRAP_CODES, MAX_LOOKUP_COUNT, MAX_NAME_BYTES, type BootstrapErrorCode } from './errors.js';
export {
  BootstrapNamespace,
  STATUS_CODES,
  type OnDemandStart,
  type RegistryEvent,
  type RegistryWatcher,
  type ServiceDescription,
  type ServiceInfo,
  type ServiceStatus,
  type ServiceTls,
} from './namespace.js';
export { ServiceOwner, exitReason } from './owner.js';
export { ServiceRegistry, type ServiceRegistryOptions } from './registry.js';
export { rsdServicesDict, serviceListings, DEFAULT_RSD_ENTITLEMENT, type PortFor, type ServiceListing } from './services-list.js';
export type { ConnectionHandler } from './socket-front.js';
