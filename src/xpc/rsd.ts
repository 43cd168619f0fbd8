// RemoteServiceDiscovery (reference §3.3): the peer-info message an RSD
// endpoint sends on stream 1 after the handshake, built on the device side
// from a service provider and parsed on the host side. Service ports are
// decimal strings on the wire.
import { XpcError } from './errors.js';
import { dict, Int64, isDictionary, uint64, UInt64, Uuid, XpcDate, XpcEndpoint, XpcFd, XpcFileTransfer, type XpcDictionary, type XpcValue } from './values.js';

/** RSD's port on the device's USB-Ethernet link (a simulator in direct mode uses any loopback port). */
export const RSD_PORT = 58783;
export const PEER_INFO_MESSAGE_TYPE = 'Handshake';
export const MESSAGING_PROTOCOL_VERSION = 5;
/** RemoteXPCVersionFlags as captured from iOS 17/18 (72057594037927942). */
export const REMOTE_XPC_VERSION_FLAGS = 0x0100000000000006n;
/** What idevice needs on every service entry; real shim services carry this one. */
export const DEFAULT_ENTITLEMENT = 'com.apple.mobile.lockdown.remote.trusted';

/** One service an RSD endpoint lists: what a provider hands the RSD server. */
export interface RsdServiceEntry {
  name: string;
  port: number;
  entitlement?: string;
  /** The service's Properties (UsesRemoteXPC, ServiceVersion, Features...). */
  properties?: XpcDictionary;
}

/** Where the Services list comes from (the sim's service table today, a registry later). */
export type RsdServiceProvider = () => RsdServiceEntry[] | Promise<RsdServiceEntry[]>;

export function buildPeerInfo(options: { uuid: Uuid; properties: XpcDictionary; services: RsdServiceEntry[] }): XpcDictionary {
  const services: XpcDictionary = new Map();
  for (const s of options.services) {
    services.set(
      s.name,
      dict({
        Entitlement: s.entitlement ?? DEFAULT_ENTITLEMENT,
        Port: String(s.port),
        Properties: s.properties ?? dict({ UsesRemoteXPC: false }),
      }),
    );
  }
  return dict({
    MessageType: PEER_INFO_MESSAGE_TYPE,
    MessagingProtocolVersion: uint64(MESSAGING_PROTOCOL_VERSION),
    UUID: options.uuid,
    Properties: options.properties,
    Services: services,
  });
}

export interface PeerInfo {
  uuid: string;
  udid: string;
  messagingProtocolVersion: number;
  properties: XpcDictionary;
  services: Array<{ name: string; port: number; entitlement: string; properties: XpcDictionary }>;
}

const bad = (why: string) => new XpcError('EXPCVALUE', `RSD peer-info: ${why}`);

/** Checks a peer-info message the way the strictest clients do (go-ios, idevice). */
export function parsePeerInfo(body: XpcDictionary): PeerInfo {
  if (body.get('MessageType') !== PEER_INFO_MESSAGE_TYPE) throw bad('MessageType is not "Handshake"');
  const version = body.get('MessagingProtocolVersion');
  if (!(version instanceof UInt64 || version instanceof Int64)) throw bad('MessagingProtocolVersion is not an integer');
  const uuid = body.get('UUID');
  if (!(uuid instanceof Uuid)) throw bad('UUID is missing');
  const properties = body.get('Properties');
  if (!isDictionary(properties)) throw bad('Properties is not a dictionary');
  const udid = properties.get('UniqueDeviceID');
  if (typeof udid !== 'string') throw bad('Properties.UniqueDeviceID is not a string');
  const servicesDict = body.get('Services');
  if (!isDictionary(servicesDict)) throw bad('Services is not a dictionary');
  const services: PeerInfo['services'] = [];
  for (const [name, entry] of servicesDict) {
    if (!isDictionary(entry)) throw bad(`service ${name} is not a dictionary`);
    const port = entry.get('Port');
    const entitlement = entry.get('Entitlement');
    if (typeof port !== 'string' || !/^\d{1,5}$/.test(port) || Number(port) > 65535) throw bad(`service ${name}: Port is not a port string`);
    if (typeof entitlement !== 'string') throw bad(`service ${name}: Entitlement is not a string`);
    const props = entry.get('Properties');
    services.push({ name, port: Number(port), entitlement, properties: isDictionary(props) ? props : new Map() });
  }
  return { uuid: uuid.toString(), udid, messagingProtocolVersion: Number(version.value), properties, services };
}

/** A JSON-friendly copy of an XPC value (integers as numbers when exact, else strings; data as base64). */
export function xpcToJson(v: XpcValue): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (v instanceof Int64 || v instanceof UInt64) {
    const n = Number(v.value);
    return Number.isSafeInteger(n) ? n : v.value.toString();
  }
  if (v instanceof Uuid) return v.toString();
  if (v instanceof XpcDate) return v.toDate().toISOString();
  if (v instanceof XpcFd) return { fd: v.raw };
  if (v instanceof XpcEndpoint) return { endpoint: true };
  if (v instanceof XpcFileTransfer) return { fileTransfer: v.messageId.toString(), info: xpcToJson(v.info) };
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(xpcToJson);
  return Object.fromEntries([...v].map(([k, x]) => [k, xpcToJson(x)]));
}
