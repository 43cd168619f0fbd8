// The tunnel requests on the usbmuxd socket, plist MessageTypes of tsmuxd's
// own (docs/server.md, "Tunnels"), shared by the server and the client
// library: their names, their Result numbers and the Tunnel dictionary.
// Every reply is a Result dictionary ({MessageType "Result", Number}) with
// what the request adds (Tunnel, TunnelList) and, when Number is not 0, an
// Error string that says why. Other daemons answer all of them Result 1.
import { isPlistDict, type PlistDict, type PlistValue } from './plist-codec.js';

export const TUNNEL_START = 'TunnelStart';
export const TUNNEL_LIST = 'TunnelList';
export const TUNNEL_STOP = 'TunnelStop';
export const TUNNEL_CONNECT = 'TunnelConnect';
export const TUNNEL_MESSAGES: ReadonlySet<string> = new Set([TUNNEL_START, TUNNEL_LIST, TUNNEL_STOP, TUNNEL_CONNECT]);

/** Result numbers of the tunnel requests beyond usbmuxd's (errno values, as the pair-record requests use). */
export const TunnelResult = {
  OK: 0,
  /** No such DeviceID or UDID (usbmuxd's BADDEV). */
  BADDEV: 2,
  /** The tunnel TCP connect was refused (RST) or timed out (usbmuxd's CONNREFUSED). */
  CONNREFUSED: 3,
  /** Starting the tunnel failed (lockdown, TLS, the handshake, the device left). */
  EIO: 5,
  /** A field is missing or malformed. */
  EINVAL: 22,
  /** The device has no CoreDeviceProxy (below iOS 17.4). */
  EOPNOTSUPP: 95,
  /** The device has no tunnel: TunnelStart first. */
  ENOTCONN: 107,
} as const;

/** One tunnel as the daemon describes it. */
export interface TunnelDescription {
  udid: string;
  deviceId: number;
  /** The host's address on the tunnel. */
  address: string;
  /** The device's address on the tunnel. */
  serverAddress: string;
  serverRsdPort: number;
  mtu: number;
  sendMss: number;
  /** The go-ios-style preamble listener (16-byte IPv6 + u32 LE port, then the stream). */
  preambleHost: string;
  preamblePort: number;
  /**
   * 'tun': the host's address is on a kernel interface (`interfaceName`), so
   * every program reaches the device at serverAddress; 'userspace': only
   * the daemon's own stack holds it, reached through the preamble listener
   * and TunnelConnect.
   */
  mode: TunnelMode;
  interfaceName?: string;
}

export type TunnelMode = 'tun' | 'userspace';

export function tunnelDict(t: TunnelDescription): PlistDict {
  return {
    UDID: t.udid,
    DeviceID: t.deviceId,
    Address: t.address,
    ServerAddress: t.serverAddress,
    ServerRSDPort: t.serverRsdPort,
    MTU: t.mtu,
    SendMSS: t.sendMss,
    PreambleHost: t.preambleHost,
    PreamblePort: t.preamblePort,
    Mode: t.mode,
    ...(t.interfaceName === undefined ? {} : { Interface: t.interfaceName }),
  };
}

function text(d: PlistDict, key: string): string {
  const v = d[key];
  if (typeof v !== 'string') throw new TypeError(`the Tunnel dictionary's ${key} is not a string`);
  return v;
}

function integer(d: PlistDict, key: string): number {
  const v = d[key];
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new TypeError(`the Tunnel dictionary's ${key} is not an integer`);
  return n;
}

export function parseTunnelDict(value: PlistValue | undefined): TunnelDescription {
  if (!isPlistDict(value)) throw new TypeError('the reply has no Tunnel dictionary');
  return {
    udid: text(value, 'UDID'),
    deviceId: integer(value, 'DeviceID'),
    address: text(value, 'Address'),
    serverAddress: text(value, 'ServerAddress'),
    serverRsdPort: integer(value, 'ServerRSDPort'),
    mtu: integer(value, 'MTU'),
    sendMss: integer(value, 'SendMSS'),
    preambleHost: text(value, 'PreambleHost'),
    preamblePort: integer(value, 'PreamblePort'),
    // A daemon from before tunnels had modes ran them all in userspace.
    mode: value.Mode === 'tun' ? 'tun' : 'userspace',
    ...(typeof value.Interface === 'string' ? { interfaceName: value.Interface } : {}),
  };
}
