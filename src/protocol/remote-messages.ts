// Remote usbmux on the wire (docs/remote.md): usbfluxd's instance messages
// (usbfluxd@608cb24 client.c:790-870, usbmux_remote.c:1016-1043,
// tools/usbfluxctl.c), its DeviceID namespace, the keys tsmuxd adds to
// AddInstance, and the DNS-SD service types.
import type { PlistDict } from './plist-codec.js';
import { plistMessage } from './plist-message.js';

export const INSTANCES = 'Instances';
export const ADD_INSTANCE = 'AddInstance';
export const REMOVE_INSTANCE = 'RemoveInstance';
export const REMOTE_MESSAGES: ReadonlySet<string> = new Set([INSTANCES, ADD_INSTANCE, REMOVE_INSTANCE]);

/**
 * tsmuxd's additions to AddInstance: the instance's TLS identity as PEM
 * text (the CLI reads the files; the daemon may not be able to), or plain
 * TCP, which usbfluxd's own AddInstance always is.
 */
export const ADD_INSTANCE_TLS = { ca: 'TlsCA', cert: 'TlsCertificate', key: 'TlsKey', insecure: 'Insecure' } as const;

/** usbfluxd's instance numbers: 1-255, the DeviceID's top byte (0 is the local muxer). */
export const MAX_INSTANCES = 255;
export const INSTANCE_SHIFT = 24;
export const REMOTE_ID_MASK = 0xffffff;

export function remoteDeviceId(instance: number, remoteId: number): number {
  return ((instance << INSTANCE_SHIFT) | (remoteId & REMOTE_ID_MASK)) >>> 0;
}

export function splitDeviceId(deviceId: number): { instance: number; remoteId: number } {
  return { instance: deviceId >>> INSTANCE_SHIFT, remoteId: deviceId & REMOTE_ID_MASK };
}

/** DNS-SD: our TLS listeners (usbfluxd never looks for it), and usbfluxd's plain one. */
export const TSMUXD_SERVICE = '_tsmuxd._tcp.local';
export const USBFLUXD_SERVICE = '_remote-mobdev._tcp.local';
/** usbfluxd's default port for `-r host` without one (main.c). */
export const USBFLUXD_DEFAULT_PORT = 5000;

/** What the consuming daemon says it is, in each request to a remote. */
const CLIENT_KEYS = { ClientVersionString: 'tsmuxd-remote', ProgName: 'tsmuxd-remote', kLibUSBMuxVersion: 3 } as const;

/** A Connect to the remote's own DeviceID; PortNumber as clients send it (network order in a host integer). */
export function remoteConnectRequest(remoteId: number, port: number): Buffer {
  const swapped = ((port & 0xff) << 8) | ((port >> 8) & 0xff);
  return plistMessage(0, { MessageType: 'Connect', DeviceID: remoteId, PortNumber: swapped, ...CLIENT_KEYS });
}

export function remoteRequest(messageType: string, tag: number, extra: PlistDict = {}): Buffer {
  return plistMessage(tag, { MessageType: messageType, ...extra, ...CLIENT_KEYS });
}

/** `HOST:PORT` or `[IPv6]:PORT`; PORT defaults to `defaultPort` when given. */
export function parseHostPort(text: string, defaultPort?: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(text);
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!m || port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`'${text}' is not HOST:PORT`);
  }
  return { host: m[1]!, port };
}
