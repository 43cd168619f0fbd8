// The CoreDeviceProxy handshake (iOS 17.4+, reference tunnel-wifi-remote §1.2
// and lockdown-xpc §3.5): inside the service's TLS, each side sends one frame
//
//   0   8  "CDTunnel"
//   8   2  body length, u16 big-endian
//   10  n  body: UTF-8 JSON
//
// the host a clientHandshakeRequest {type, mtu}, the device a
// serverHandshakeResponse {type, clientParameters {address, mtu, netmask},
// serverAddress, serverRSDPort}; bare IPv6 packets follow. The native data
// plane frames the bytes; the JSON is built and checked here, for the host
// (the device's answer) and for the sim (the host's request), strictly:
// every field's type, addresses that are IPv6 text on one /64, an MTU IPv6
// can carry, a real port. Each error names its field.
import { isMulticast, isUnspecified, netmaskPrefixLength, parseIpv6, sameSlash64 } from './ipv6.js';

/** The lockdown service that carries the tunnel. */
export const CORE_DEVICE_PROXY_SERVICE = 'com.apple.internal.devicecompute.CoreDeviceProxy';

export const CDTUNNEL_MAGIC = Buffer.from('CDTunnel', 'ascii');
export const CDTUNNEL_HEADER_SIZE = 10;
/**
 * The largest body either end accepts (the native side's kMaxCdTunnelBody): a
 * real response is about 200 bytes; the u16 would allow 65535.
 */
export const MAX_CDTUNNEL_BODY = 4096;

/** IPv6's minimum link MTU, and the largest a u16 payload length allows. */
export const MIN_TUNNEL_MTU = 1280;
export const MAX_TUNNEL_MTU = 65535;
/** What the host asks for, as pymobiledevice3 and idevice do (go-ios asks 1280). */
export const HOST_REQUESTED_MTU = 16000;
/** IPv6 and TCP headers without options: MSS = MTU - this. */
export const TCP_IPV6_OVERHEAD = 60;
/**
 * The send MSS a tunnel starts with whatever MTU is granted: real devices
 * drop larger packets under sustained load (pymobiledevice3 c3cea12).
 */
export const DEFAULT_SEND_MSS = 1340;
export const MIN_SEND_MSS = MIN_TUNNEL_MTU - TCP_IPV6_OVERHEAD;
export const MAX_SEND_MSS = MAX_TUNNEL_MTU - TCP_IPV6_OVERHEAD;
/** The netmask every device sends: one /64 per tunnel. */
export const TUNNEL_NETMASK = 'ffff:ffff:ffff:ffff::';

export const CLIENT_HANDSHAKE_REQUEST = 'clientHandshakeRequest';
export const SERVER_HANDSHAKE_RESPONSE = 'serverHandshakeResponse';

export class CdTunnelError extends Error {
  readonly code = 'ECDTUNNEL';
  constructor(message: string) {
    super(message);
    this.name = 'CdTunnelError';
  }
}

// ---- the frame ----

/** One frame around a JSON body (text, or a value to serialise). */
export function encodeCdTunnelFrame(body: string | object): Buffer {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MAX_CDTUNNEL_BODY) {
    throw new CdTunnelError(`CDTunnel body of ${bytes.length} bytes is over the ${MAX_CDTUNNEL_BODY}-byte limit`);
  }
  const header = Buffer.alloc(CDTUNNEL_HEADER_SIZE);
  CDTUNNEL_MAGIC.copy(header, 0);
  header.writeUInt16BE(bytes.length, 8);
  return Buffer.concat([header, bytes]);
}

export interface CdTunnelFrame {
  /** The JSON text. */
  body: string;
  /** Header and body: where the bytes after the frame (IPv6 packets) begin. */
  frameLength: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The frame at the start of a byte stream, or undefined while more bytes are
 * needed. A wrong magic and a length over the limit fail as soon as the
 * header bytes that show them are here, before the body is waited for.
 */
export function readCdTunnelFrame(bytes: Uint8Array): CdTunnelFrame | undefined {
  const have = Math.min(bytes.length, CDTUNNEL_MAGIC.length);
  for (let i = 0; i < have; i++) {
    if (bytes[i] !== CDTUNNEL_MAGIC[i]) {
      const seen = Buffer.from(bytes.subarray(0, have)).toString('hex');
      throw new CdTunnelError(`CDTunnel frame has the wrong magic (${seen}, not ${CDTUNNEL_MAGIC.subarray(0, have).toString('hex')})`);
    }
  }
  if (bytes.length < CDTUNNEL_HEADER_SIZE) return undefined;
  const length = (bytes[8]! << 8) | bytes[9]!;
  if (length > MAX_CDTUNNEL_BODY) {
    throw new CdTunnelError(`CDTunnel body length ${length} is over the ${MAX_CDTUNNEL_BODY}-byte limit`);
  }
  const frameLength = CDTUNNEL_HEADER_SIZE + length;
  if (bytes.length < frameLength) return undefined;
  let body: string;
  try {
    body = utf8.decode(bytes.subarray(CDTUNNEL_HEADER_SIZE, frameLength));
  } catch {
    throw new CdTunnelError('CDTunnel body is not UTF-8');
  }
  return { body, frameLength };
}

/** Exactly one whole frame: its length may not run past the bytes given, nor leave any over. */
export function decodeCdTunnelFrame(bytes: Uint8Array): string {
  const frame = readCdTunnelFrame(bytes);
  if (!frame) {
    if (bytes.length < CDTUNNEL_HEADER_SIZE) throw new CdTunnelError(`CDTunnel frame of ${bytes.length} bytes ends inside its 10-byte header`);
    const length = (bytes[8]! << 8) | bytes[9]!;
    throw new CdTunnelError(`CDTunnel body length ${length} runs past the ${bytes.length - CDTUNNEL_HEADER_SIZE} bytes of body`);
  }
  if (frame.frameLength !== bytes.length) {
    throw new CdTunnelError(`CDTunnel frame has ${bytes.length - frame.frameLength} bytes after its ${frame.body.length}-byte body`);
  }
  return frame.body;
}

// ---- the JSON ----

type Json = Record<string, unknown>;

function parseObject(text: string, what: string): Json {
  if (typeof text !== 'string') throw new CdTunnelError(`${what} is not text`);
  if (Buffer.byteLength(text, 'utf8') > MAX_CDTUNNEL_BODY) {
    throw new CdTunnelError(`${what} of ${Buffer.byteLength(text, 'utf8')} bytes is over the ${MAX_CDTUNNEL_BODY}-byte limit`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CdTunnelError(`${what} is not JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new CdTunnelError(`${what} is not a JSON object`);
  return value as Json;
}

function field(obj: Json, key: string, what: string): unknown {
  if (!Object.hasOwn(obj, key)) throw new CdTunnelError(`${what} lacks ${key}`);
  return obj[key];
}

function integerIn(obj: Json, key: string, min: number, max: number, what: string, label = key): number {
  const v = field(obj, key, what);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new CdTunnelError(`${what}: ${label} is not an integer in ${min}..${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

function ipv6Field(obj: Json, key: string, what: string, label = key): Buffer {
  const v = field(obj, key, what);
  const bytes = typeof v === 'string' ? parseIpv6(v) : undefined;
  if (!bytes) throw new CdTunnelError(`${what}: ${label} is not an IPv6 address (got ${JSON.stringify(v)})`);
  return bytes;
}

function expectType(obj: Json, type: string, what: string): void {
  const v = field(obj, 'type', what);
  if (v !== type) throw new CdTunnelError(`${what}: type is ${JSON.stringify(v)}, not "${type}"`);
}

export interface ClientHandshakeRequest {
  mtu: number;
}

/** The host's request, keys sorted as go-ios's json.Marshal writes them (the reference vector). */
export function buildClientHandshakeRequest(mtu = HOST_REQUESTED_MTU): string {
  if (!Number.isInteger(mtu) || mtu < MIN_TUNNEL_MTU || mtu > MAX_TUNNEL_MTU) {
    throw new RangeError(`a requested MTU is an integer in ${MIN_TUNNEL_MTU}..${MAX_TUNNEL_MTU}, not ${mtu}`);
  }
  return JSON.stringify({ mtu, type: CLIENT_HANDSHAKE_REQUEST });
}

/** The host's request as a device checks it. */
export function parseClientHandshakeRequest(text: string): ClientHandshakeRequest {
  const what = 'CDTunnel request';
  const obj = parseObject(text, what);
  expectType(obj, CLIENT_HANDSHAKE_REQUEST, what);
  return { mtu: integerIn(obj, 'mtu', MIN_TUNNEL_MTU, MAX_TUNNEL_MTU, what) };
}

export interface ServerHandshakeResponse {
  /** The host's address on the tunnel (clientParameters.address). */
  clientAddress: string;
  /** The MTU the device grants (clientParameters.mtu). */
  mtu: number;
  /** clientParameters.netmask, as sent. */
  netmask: string;
  /** The device's address on the tunnel. */
  serverAddress: string;
  /** RemoteServiceDiscovery's port at serverAddress. */
  serverRSDPort: number;
}

/** The device's answer, keys sorted as the captured example (pymobiledevice3 misc/RemoteXPC.md). */
export function buildServerHandshakeResponse(r: ServerHandshakeResponse): string {
  const text = JSON.stringify({
    clientParameters: { address: r.clientAddress, mtu: r.mtu, netmask: r.netmask },
    serverAddress: r.serverAddress,
    serverRSDPort: r.serverRSDPort,
    type: SERVER_HANDSHAKE_RESPONSE,
  });
  // What we send must pass what we accept.
  parseServerHandshakeResponse(text);
  return text;
}

/** The device's answer as the host checks it. */
export function parseServerHandshakeResponse(text: string): ServerHandshakeResponse {
  const what = 'CDTunnel response';
  const obj = parseObject(text, what);
  expectType(obj, SERVER_HANDSHAKE_RESPONSE, what);
  const params = field(obj, 'clientParameters', what);
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw new CdTunnelError(`${what}: clientParameters is not an object`);
  }
  const client = params as Json;
  const clientAddress = ipv6Field(client, 'address', what, 'clientParameters.address');
  const mtu = integerIn(client, 'mtu', MIN_TUNNEL_MTU, MAX_TUNNEL_MTU, what, 'clientParameters.mtu');
  const mask = ipv6Field(client, 'netmask', what, 'clientParameters.netmask');
  if (netmaskPrefixLength(mask) === undefined) {
    throw new CdTunnelError(`${what}: clientParameters.netmask ${JSON.stringify(client.netmask)} is not a contiguous mask`);
  }
  const serverAddress = ipv6Field(obj, 'serverAddress', what);
  const serverRSDPort = integerIn(obj, 'serverRSDPort', 1, 65535, what);
  for (const [label, bytes] of [['clientParameters.address', clientAddress], ['serverAddress', serverAddress]] as const) {
    if (isMulticast(bytes) || isUnspecified(bytes)) throw new CdTunnelError(`${what}: ${label} is not a unicast address`);
  }
  if (!sameSlash64(clientAddress, serverAddress)) {
    throw new CdTunnelError(`${what}: clientParameters.address ${String(client.address)} and serverAddress ${String(obj.serverAddress)} are not on one /64`);
  }
  if (clientAddress.equals(serverAddress)) {
    throw new CdTunnelError(`${what}: clientParameters.address and serverAddress are the same address`);
  }
  return {
    clientAddress: client.address as string,
    mtu,
    netmask: client.netmask as string,
    serverAddress: obj.serverAddress as string,
    serverRSDPort,
  };
}
