// A network device's NetworkAddress: a sockaddr in a 128-byte zeroed blob
// (reference tunnel-wifi-remote §3.4). Clients read it in two layouts:
// - BSD (Apple's muxer runs on macOS): byte 0 sa_len (0x10 / 0x1C), byte 1
//   the BSD family (AF_INET 2 / AF_INET6 30). Debian 12's libimobiledevice
//   1.3.0 and libusbmuxd 2.0.2 (iproxy) use byte 0 as the copy length and
//   accept only family bytes 0x02 / 0x1E, so this is the default;
// - Linux (a u16 sa_family at offset 0: 2 / 10), for clients that cast the
//   bytes to `struct sockaddr`: libimobiledevice from 1.4.0 (commit a172604).
//   libusbmuxd's own iproxy still reads BSD (see layoutForClient).
// In both, byte 0 is never 0: libusbmuxd drops an entry whose first byte is.
import { isIP } from 'node:net';

export const NETWORK_ADDRESS_SIZE = 128;

export type AddressLayout = 'bsd' | 'linux';

const BSD_AF_INET6 = 30;
const LINUX_AF_INET6 = 10;
const AF_INET = 2;
const SOCKADDR_IN_LEN = 16;
const SOCKADDR_IN6_LEN = 28;

/** The parsed form the daemon keeps: an IP address and, for IPv6 link-local, its scope. */
export interface NetworkEndpoint {
  address: string;
  /** sin6_scope_id (the interface index) for IPv6; ignored for IPv4. */
  scopeId?: number;
}

export function encodeNetworkAddress(endpoint: NetworkEndpoint, layout: AddressLayout): Buffer {
  const blob = Buffer.alloc(NETWORK_ADDRESS_SIZE);
  const family = isIP(endpoint.address);
  if (family === 4) {
    if (layout === 'bsd') {
      blob[0] = SOCKADDR_IN_LEN;
      blob[1] = AF_INET;
    } else {
      blob.writeUInt16LE(AF_INET, 0);
    }
    // sin_port stays 0: clients put the port they want there.
    endpoint.address.split('.').forEach((octet, i) => (blob[4 + i] = Number(octet)));
    return blob;
  }
  if (family === 6) {
    if (layout === 'bsd') {
      blob[0] = SOCKADDR_IN6_LEN;
      blob[1] = BSD_AF_INET6;
    } else {
      blob.writeUInt16LE(LINUX_AF_INET6, 0);
    }
    ipv6Bytes(endpoint.address).copy(blob, 8);
    blob.writeUInt32LE((endpoint.scopeId ?? 0) >>> 0, 24);
    return blob;
  }
  throw new TypeError(`not an IP address: ${JSON.stringify(endpoint.address)}`);
}

/** Reads either layout back (tests, and clients of our library). */
export function decodeNetworkAddress(blob: Uint8Array): NetworkEndpoint | undefined {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (b.length < SOCKADDR_IN_LEN) return undefined;
  let family: 4 | 6 | undefined;
  if (b[0] === SOCKADDR_IN_LEN && b[1] === AF_INET) family = 4;
  else if (b[0] === SOCKADDR_IN6_LEN && b[1] === BSD_AF_INET6) family = 6;
  else if (b.readUInt16LE(0) === AF_INET) family = 4;
  else if (b.readUInt16LE(0) === LINUX_AF_INET6) family = 6;
  if (family === 4) return { address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}` };
  if (family === 6 && b.length >= SOCKADDR_IN6_LEN) {
    const words: string[] = [];
    for (let i = 0; i < 8; i++) words.push(b.readUInt16BE(8 + 2 * i).toString(16));
    return { address: words.join(':').replace(/\b(?:0:){2,}/, ':'), scopeId: b.readUInt32LE(24) };
  }
  return undefined;
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split('%')[0]!.split('::') as [string, string | undefined];
  const parse = (part: string | undefined): number[] => {
    if (!part) return [];
    const out: number[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const v4 = group.split('.').map(Number);
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        out.push(parseInt(group, 16));
      }
    }
    return out;
  };
  const left = parse(head);
  const right = parse(tail);
  const words = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = Buffer.alloc(16);
  words.forEach((w, i) => bytes.writeUInt16BE(w & 0xffff, 2 * i));
  return bytes;
}

/**
 * libusbmuxd's version from its ClientVersionString ("libusbmuxd 2.1.0"), or
 * undefined for anything else.
 */
function libusbmuxdVersion(clientVersion: string | undefined): number[] | undefined {
  const m = /^libusbmuxd (\d+)\.(\d+)(?:\.(\d+))?/.exec(clientVersion ?? '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

/** libusbmuxd's own tools, which read the BSD layout in every release so far (tools/iproxy.c checks byte 1). */
const BSD_READING_TOOLS = new Set(['iproxy', 'inetcat']);

/**
 * The layout a client reads. libimobiledevice casts the blob to `struct
 * sockaddr` from 1.4.0 (commit a172604); libusbmuxd's own iproxy and
 * inetcat read the BSD layout in 2.0.2, 2.1.0, 2.1.1 and later. A client
 * names only its libusbmuxd (`ClientVersionString "libusbmuxd X.Y.Z"`) and
 * its program (`ProgName`), so: the native layout for libusbmuxd 2.1 or
 * later (the release paired with libimobiledevice 1.4) unless the program is
 * iproxy or inetcat; Apple's layout for everything else, including
 * libusbmuxd 2.0.x (Debian 12: libimobiledevice 1.3.0), pymobiledevice3's
 * `qt4i-usbmuxd` and go-ios, which do not read the bytes as a sockaddr.
 * libimobiledevice 1.4 built against libusbmuxd 2.0.2 cannot be told from
 * 1.3.0 and gets the BSD layout (docs/wifi.md).
 */
export function layoutForClient(info: { clientVersion?: string; libusbmuxVersion?: number; progName?: string }): AddressLayout {
  const v = libusbmuxdVersion(info.clientVersion);
  if (!v || (info.libusbmuxVersion !== undefined && info.libusbmuxVersion < 3)) return 'bsd';
  if (info.progName !== undefined && BSD_READING_TOOLS.has(info.progName)) return 'bsd';
  const [major, minor] = v as [number, number, number];
  return major > 2 || (major === 2 && minor >= 1) ? 'linux' : 'bsd';
}
