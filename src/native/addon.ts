// Loads the data-plane addon and types its surface. The C++ side is kept
// thin; what it exposes is declared here, and every error it throws is a
// NativeError carrying a string `code` (the class is injected at load, as
// better-sqlite3 injects SqliteError).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { CLIENT_COMMANDS, INSTALL_NOTE, NativeError, NativeUnavailableError, packageRoot } from './native-error.js';

// Importing this module loads the addon, so only the daemon, the sim and
// what they use import it; the client commands and the client library never
// do (test/no-addon.test.ts holds them to it).
export { NativeError, NativeUnavailableError, packageRoot };

export interface EndpointDescriptor {
  address: number;
  attributes: number;
  maxPacketSize: number;
}

export interface InterfaceDescriptor {
  number: number;
  interfaceClass: number;
  subclass: number;
  protocol: number;
  endpoints: EndpointDescriptor[];
}

export interface ConfigurationDescriptor {
  value: number;
  interfaces: InterfaceDescriptor[];
}

/** What a cable's device end announces in its first message. */
export interface CableDescriptor {
  vendorId: number;
  productId: number;
  bcdDevice?: number;
  /** libusb_speed: 1 low, 2 full, 3 high, 4 super, 5 super+ */
  speed?: number;
  activeConfiguration?: number;
  serial: string;
  configurations: ConfigurationDescriptor[];
}

/**
 * What native code needs to open a phone that discovery found: where it is,
 * what it must still be (checked against libusb's cached descriptor before
 * anything is opened), and the configuration/interface/endpoints chosen by
 * src/native/config-select.ts.
 */
export interface UsbOpenRequest {
  busNumber: number;
  deviceAddress: number;
  vendorId: number;
  productId: number;
  configuration: number;
  interfaceNumber: number;
  endpointIn: number;
  endpointOut: number;
  maxPacketSize: number;
}

export type NativeEvent =
  | {
      type: 'attached';
      handle: number;
      descriptor: Required<CableDescriptor>;
      /** What carries the device. */
      link: 'cable' | 'usb';
      /** USB only: (bus << 16) | address, as usbmuxd reports it. */
      locationId?: number;
    }
  | { type: 'ready'; handle: number; version: number }
  | { type: 'detached'; handle: number; code: string; reason: string }
  | { type: 'log'; handle?: number; conn?: number; level: 'error' | 'warning' | 'info' | 'debug'; text: string }
  | { type: 'connected'; handle: number; conn: number }
  /** `fd`: the client socket a connectClient(..., takeFd) took, given back. */
  | { type: 'connectFailed'; handle?: number; conn: number; code: string; reason: string; fd?: number }
  | { type: 'closed'; conn: number; reason: string; bytesIn: number; bytesOut: number }
  | { type: 'snapshot'; requestId: number; snapshot: EngineSnapshot }
  /**
   * A CDTunnel handshake frame arrived (TLS is up). Host: the device's
   * serverHandshakeResponse; device: the host's clientHandshakeRequest. The
   * body is the frame's JSON text, at most MAX_CDTUNNEL_BODY bytes; JS
   * validates it and answers with configureTunnel() or closeTunnel().
   */
  | { type: 'tunnelHandshake'; handle: number; tunnel: number; role: 'host' | 'device'; body: string }
  /** A tunnel ended (its streams are reset or drained first); `code` as for detached. */
  | { type: 'tunnelClosed'; handle: number; tunnel: number; code: string; reason: string }
  | ({ type: 'clientArrived' } & ClientArrival)
  | ({ type: 'captureEnded' } & CaptureEnd)
  /** A dialled remote's answer to its Connect (dialRemote): the whole usbmuxd message. */
  | { type: 'remoteReply'; conn: number; bytes: Buffer }
  /** A remote connection's TLS handshake is done: version, cipher and the peer's subject. */
  | { type: 'remoteSecure'; conn: number; text: string };

/**
 * A capture ended (docs/capture.md): `reason` says why; `code` is 'EIO' when
 * its output failed (a reader gone, a full disk), 'EBUSY' when it never
 * started, else ''. `bytes` of pcapng written, `dropped` records its full
 * ring refused.
 */
export interface CaptureEnd {
  capture: number;
  code: string;
  reason: string;
  packets: number;
  bytes: number;
  dropped: number;
}

/** What a capture takes: every device or these handles, every port or one device port. */
export interface CaptureOptions {
  handles?: number[];
  port?: number;
  /** The ring between the data path and the writer (64 KiB to 256 MiB; default 32 MiB). */
  ringBytes?: number;
  /** The pcapng section's shb_userappl. */
  application?: string;
}

/** Remote usbmux's mutual TLS (docs/remote.md): PEM text, at most 256 KiB each. */
export interface RemoteTlsPem {
  certPem: string;
  keyPem: string;
  caPem: string;
}

/**
 * A usbmuxd client from the front door (openClientDoor): its socket's fd,
 * which is now JS's to close or wrap, who connected, and its first message.
 */
export interface ClientArrival {
  fd: number;
  /** Absent when the kernel had no credentials for it. */
  peer?: PeerCredentials;
  /** The whole first message (header and body) when `complete`; else what arrived of it. */
  bytes: Buffer;
  complete: boolean;
  /** Why an incomplete client was handed over (a bad length, the door's wait or size). */
  why: string;
}

export interface EngineStats {
  transfersOut: number;
  transfersIn: number;
  zlpsOut: number;
  zlpsIn: number;
  usbBytesOut: number;
  usbBytesIn: number;
  payloadBytesToDevice: number;
  payloadBytesFromDevice: number;
  packetsOut: number;
  packetsIn: number;
  acksOut: number;
  rstsOut: number;
  rstsIn: number;
  controlIn: number;
  logsSuppressed: number;
  jsWakeups: number;
  jsEvents: number;
  windowStalls: number;
  /** Connections reset because the peer's window stayed shut past the limit. */
  zeroWindowResets: number;
  devicesActive: number;
  connectionsActive: number;
  connectionsTotal: number;
}

/** One device link as the event thread saw it (`MuxEngine.snapshot()`). */
export interface DeviceSnapshot {
  handle: number;
  role: 'host' | 'device';
  /** `attached`: described, not opened yet; `handshake`: VERSION/SETUP; `dead`: failing. */
  state: 'attached' | 'handshake' | 'active' | 'dead';
  /** Mux protocol version, 0 before the handshake. */
  version: number;
  /** TCP payload over every connection the device has had; "to device" is host -> phone in either role. */
  bytesToDevice: number;
  bytesFromDevice: number;
  /** Whole mux packets (headers included). */
  usbBytesOut: number;
  usbBytesIn: number;
  /** Connections live in its session. */
  connections: number;
  connectionsTotal: number;
  /** Bytes waiting in the transport's send queue. */
  queuedOut: number;
  /** Above the transport's high-water mark: connections stop reading their sockets. */
  congested: boolean;
}

/** One pseudo-TCP connection as the event thread saw it. */
export interface ConnectionSnapshot {
  conn: number;
  handle: number;
  role: 'host' | 'device';
  state: 'synSent' | 'synReceived' | 'synAckSent' | 'established' | 'draining' | 'closed';
  devicePort: number;
  /** The host's end of the port pair. */
  sourcePort: number;
  bytesToDevice: number;
  bytesFromDevice: number;
  /** The peer's last advertised window, in bytes (unscaled). */
  sendWindow: number;
  /** The window we advertise, in bytes. */
  receiveWindow: number;
  /** Sent and not yet ACKed. */
  inFlight: number;
  /** Received and not yet taken by the local socket. */
  queued: number;
  /** Times the peer's closed window stopped us. */
  stalls: number;
  /** Smoothed time from a data packet to the ACK covering it; absent before the first sample. */
  rttMs?: number;
  rttSamples: number;
  ageMs: number;
}

export interface EngineSnapshot {
  /** Monotonic clock of the event thread, for rates between snapshots. */
  timeMs: number;
  devices: DeviceSnapshot[];
  connections: ConnectionSnapshot[];
}

export interface PortMapEntry {
  /** The device port a host connects to. */
  port: number;
  /** A Unix socket to connect to instead of TCP. */
  path?: string;
  host?: string;
  targetPort?: number;
  /** Serve one connection, then forget the mapping (ports StartService hands out). */
  once?: boolean;
  /** A measuring service inside the engine, with no socket (see startTestService). */
  builtin?: TestServiceKind;
  /** Serve CoreDeviceProxy on this port (device role): TLS as the server with this identity. */
  tunnel?: TunnelTlsIdentity;
}

/** Where a device port's connections go: a Unix socket, TCP (127.0.0.1 unless `host`), or a built-in service. */
export type PortTarget = Omit<PortMapEntry, 'port'>;

/** The TLS identity of one end of a CoreDeviceProxy connection (PEM). */
export interface TunnelTlsIdentity {
  certPem: string;
  keyPem: string;
}

/** Host role: the CoreDeviceProxy connection's TLS and the request to send. */
export interface HostTunnelOptions extends TunnelTlsIdentity {
  /** The clientHandshakeRequest JSON, sent in a CDTunnel frame once TLS is up. */
  request: string;
}

/** Where a tunnel TCP port goes on the device side (like a PortTarget). */
export interface TunnelPortTarget {
  port: number;
  path?: string;
  host?: string;
  targetPort?: number;
}

/** What configureTunnel() brings up after the handshake. */
export interface TunnelConfig {
  /** Our address on the tunnel (host: clientParameters.address; device: serverAddress). */
  localAddress: string;
  /** The other end's address. */
  peerAddress: string;
  /** The tunnel's MTU: the interface's, and what we advertise (MSS = MTU - 60). */
  mtu: number;
  /** The MSS we send with (default 1340, capped at MTU - 60). */
  sendMss?: number;
  /** Device role: the serverHandshakeResponse JSON, sent before the interface is up. */
  response?: string;
  /** Device role: where each tunnel TCP port goes; other ports are refused (RST). */
  ports?: TunnelPortTarget[];
  /** Device role, as a strict phone: once loaded, drop packets over this many bytes. */
  dropOversize?: number;
  /** Device role: drop this fraction (0..1) of the packets that arrive, at random. */
  lossRate?: number;
}

export interface DeviceRoleOptions {
  /** Receive window in bytes; a phone advertises 131072. */
  window?: number;
  /** The mux version the device answers with (2 for every modern phone). */
  version?: 1 | 2;
  /** Send CONTROL log lines as a phone does. */
  controlLogs?: boolean;
  /** Unmapped ports connect to 127.0.0.1:<port> (default) or are refused. */
  defaultLoopback?: boolean;
  portMap?: PortMapEntry[];
}

export type TestServiceKind = 'echo' | 'sink' | 'source';

export interface NativeEngine {
  listenCable(path: string): number;
  closeListener(id: number): void;
  openDevice(handle: number, options: { window?: number; maxPacketSize?: number; zeroWindowTimeoutMs?: number }): void;
  /** `unplugged`: the device is gone (no RSTs are sent), detached with ERR_UNPLUGGED. */
  closeDevice(handle: number, unplugged?: boolean): void;
  /** Starts the engine's own libusb context; throws NativeError ERR_USB_UNAVAILABLE. */
  startUsb(): void;
  /** Opens a discovered phone; `attached` or `detached` (with why) follows. */
  openUsb(request: UsbOpenRequest): number;
  connect(handle: number, port: number, timeoutMs: number): number;
  /**
   * connect() with the client's socket handed over at once: when the device
   * accepts, the data plane writes `greeting` (the Result) to it and pumps,
   * with no turn through JS. It works on a duplicate of `fd` (closed on
   * failure), unless `takeFd`: then the fd is the data plane's from the call,
   * no connected event follows, and a connectFailed event gives it back.
   */
  connectClient(
    handle: number,
    port: number,
    timeoutMs: number,
    fd: number,
    pipelined: Buffer | undefined,
    greeting: Buffer,
    takeFd?: boolean,
  ): number;
  attachClient(conn: number, fd: number, pipelined?: Buffer): void;
  /**
   * The usbmuxd socket's front door: a Unix socket at `path` (the caller
   * removed any stale file), whose clients arrive as clientArrived events
   * once their first message is in. Returns the door's id.
   */
  openClientDoor(path: string, backlog: number): number;
  /** Stops accepting; clients still waiting for their first message see EOF. */
  closeClientDoor(door: number): void;
  closeConnection(conn: number): void;
  /**
   * A network Connect: the client's socket joined to the daemon's TCP
   * connection to the phone on the event thread (both fds duplicated; the
   * caller closes its own). `toPhone` / `toClient` go first each way, at
   * most 256 KiB each. Returns a connection id: closeConnection() ends it,
   * and its end comes as a `closed` event.
   */
  spliceSockets(clientFd: number, toPhone: Buffer | undefined, phoneFd: number, toClient: Buffer | undefined): number;
  /**
   * Remote usbmux, consuming: a TCP socket connected to a remote host (fd
   * duplicated). TLS (unless `tls` is null) and `request` run on the event
   * thread; the answer comes as `remoteReply`, a failure as `closed`. Then
   * attachDialled() or closeConnection(). Returns a connection id.
   */
  dialRemote(fd: number, tls: RemoteTlsPem | null, request: Buffer): number;
  attachDialled(conn: number, fd: number, pipelined?: Buffer): void;
  /**
   * Remote usbmux, serving: a remote client's TCP socket (fd duplicated), its
   * TLS terminated on the event thread; `fd` is a socketpair end for the
   * usbmuxd server. `remoteSecure` when the handshake is done, `closed` at the end.
   */
  serveRemote(fd: number, tls: RemoteTlsPem): { conn: number; fd: number };
  /**
   * A splice's far end is lost (its remote host gone): closed now; the client
   * gets what was read and then EOF, and `closed` carries `reason` once it closes.
   */
  spliceFarGone(conn: number, reason: string): void;
  attachDeviceRole(cablePath: string, descriptor: CableDescriptor, options?: DeviceRoleOptions): number;
  mapDevicePort(handle: number, port: number, target?: PortTarget): void;
  /**
   * The device role on a mounted FunctionFS (a USB gadget's function): writes
   * the mux interface's descriptors to ep0 at once, then runs one session per
   * ENABLE under the returned handle ('ready' each time, 'detached' on
   * DISABLE/UNBIND) until closeDevice().
   */
  attachDeviceRoleFfs(ffsDir: string, options?: DeviceRoleOptions): number;
  /**
   * A FunctionFS function that only shows an interface to the host (a phone's
   * PTP, audio or network interface around the mux): descriptors now, ep0
   * held (events logged, control requests stalled) until closeDevice().
   */
  attachFfsPlaceholder(ffsDir: string, spec: FfsInterfaceSpec): number;
  /**
   * The simulated phone's echo, sink or source (protocol: src/protocol/measuring.ts),
   * served in C++ on the event thread; on 127.0.0.1 (returns the port) or on
   * a Unix path (returns it). Served until close().
   */
  startTestService(kind: TestServiceKind, path?: string): number | string;
  /** Host: runs CoreDeviceProxy on a connected, unattached connection; the tunnel's id. */
  startTunnel(conn: number, options: HostTunnelOptions): number;
  /** Either role, after its tunnelHandshake event: brings the tunnel's interface up. */
  configureTunnel(tunnel: number, config: TunnelConfig): void;
  /** Host: a TCP connection through the tunnel; 'connected'/'connectFailed' follow with conn = the stream id. */
  tunnelConnect(tunnel: number, address: string, port: number, timeoutMs: number): number;
  /** Host: hands a client socket to a connected stream, as attachClient() does for a connection. */
  attachTunnelClient(stream: number, fd: number, pipelined?: Buffer): void;
  /** Host: a loopback listener speaking go-ios's preamble (16-byte IPv6 + u32 LE port); returns the bound port. */
  listenTunnelPreamble(tunnel: number, host: string, port: number): number;
  openTunnelInterface(tunnel: number, setup: { namePattern: string; address: string; prefixLength?: number; mtu: number }): string;
  closeTunnel(tunnel: number): void;
  /** Writes pcapng to `fd` (duplicated; the caller closes its own) until stopCapture() or its output ends; captureEnded follows. */
  startCapture(fd: number, options: CaptureOptions): number;
  stopCapture(capture: number, reason?: string): void;
  addCaptureDevice(capture: number, handle: number): void;
  /** What names a device handle in the captures (its UDID). */
  captureLabel(handle: number, label: string): void;
  /** One SSLKEYLOGFILE line of a TLS session the daemon runs; in the captures before the next packet. */
  captureSecret(line: string): void;
  captureRunning(): boolean;
  stats(): EngineStats;
  /**
   * Asks the event thread for a snapshot; it arrives as a `snapshot` event
   * carrying `requestId`. Nothing waits. Throws ERR_ENGINE_CLOSED once stopped.
   */
  requestSnapshot(requestId: number): void;
  ref(): void;
  unref(): void;
  close(): void;
}

export interface FfsEndpointSpec {
  direction: 'in' | 'out';
  /** Default 'bulk'. */
  type?: 'bulk' | 'interrupt';
  /** Interrupt only (bulk endpoints take the interface's sizes): 1..64. */
  maxPacketSize?: number;
  /** Interrupt only: the polling interval in ms. */
  intervalMs?: number;
}

/** One FunctionFS interface; every field defaults to the mux interface's. */
export interface FfsInterfaceSpec {
  interfaceClass?: number;
  subclass?: number;
  protocol?: number;
  name?: string;
  /** wMaxPacketSize of the bulk endpoints at full speed (8/16/32/64). */
  fullSpeedMaxPacket?: number;
  /** ... and at high speed (512). */
  highSpeedMaxPacket?: number;
  /** In descriptor order (= ep1, ep2... files); the mux: OUT then IN. */
  endpoints?: FfsEndpointSpec[];
}

export interface DecodedPacket {
  protocol: number;
  length: number;
  magic?: number;
  txSeq?: number;
  rxSeq?: number;
  tcp?: { sport: number; dport: number; seq: number; ack: number; flags: number; window: number };
  payload: Buffer;
}

export interface PacketSpec {
  version?: 1 | 2;
  protocol?: number;
  length?: number;
  magic?: number;
  txSeq?: number;
  rxSeq?: number;
  tcp?: { sport?: number; dport?: number; seq?: number; ack?: number; flags?: number; window?: number; dataOffset?: number };
  payload?: Buffer;
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

export interface NativeAddon {
  setErrorClass(cls: typeof NativeError): void;
  libusbVersion(): string;
  /** Opens `path` and holds an fcntl write lock on it; returns the fd. Throws ERR_LOCKED. */
  lockFile(path: string): number;
  /**
   * The kernel's record of the process at the other end of a connected Unix
   * socket (SO_PEERCRED). Throws NativeError ERR_NOT_UNIX_SOCKET for any
   * other socket, ERR_SYSTEM if the fd is not a socket.
   */
  peerCredentials(fd: number): PeerCredentials;
  Engine: new (onEvents: (events: NativeEvent[]) => void) => NativeEngine;
}

/** Why the addon is missing, what still works, and what would bring it. */
function unavailable(err: unknown): NativeUnavailableError {
  const where = `${process.platform}-${process.arch}`;
  const why = String((err as Error)?.message ?? err).split('\n')[0];
  let note = '';
  try {
    note = ` At install: ${readFileSync(join(packageRoot, INSTALL_NOTE), 'utf8').trim()}`;
  } catch {
    // no note: the install script did not run here, or found nothing wrong
  }
  const head =
    process.platform === 'linux'
      ? `the native addon is not available for ${where} (${why}). The daemon and 'tsmuxd sim' need it: ` +
        `build it with 'npm rebuild tsmuxd --build-from-source' (a C++ compiler, make, python3, libusb-1.0 and OpenSSL headers).`
      : `the tsmuxd daemon and 'tsmuxd sim' run on Linux only; there is no native addon for ${where} (${why}).`;
  return new NativeUnavailableError(`${head}${note} The client commands (${CLIENT_COMMANDS}) and the client library work without it.`, { cause: err });
}

function load(): { addon: NativeAddon; file: string } {
  const require = createRequire(import.meta.url);
  const dir = process.env.TSMUXD_NATIVE_DIR ?? packageRoot;
  let addon: NativeAddon;
  let file: string;
  try {
    // node-gyp-build's own choice (build/Release, else prebuilds/<platform>-<arch>/), loaded as it loads it.
    file = (require('node-gyp-build') as { path(dir: string): string }).path(dir);
    addon = require(file) as NativeAddon;
  } catch (err) {
    throw unavailable(err);
  }
  const expected = ['setErrorClass', 'libusbVersion', 'lockFile', 'peerCredentials', 'Engine'] as const;
  for (const key of expected) {
    if (!(key in addon)) throw new Error(`tsmuxd addon is missing ${key}; rebuild it`);
  }
  addon.setErrorClass(NativeError);
  return { addon, file };
}

const loaded = load();
export const native: NativeAddon = loaded.addon;
/** The file the addon came from: prebuilds/<platform>-<arch>/tsmuxd.napi.node, or a build/Release of a build here. */
export const nativeFile: string = loaded.file;

/**
 * The hash of the native sources a prebuild was built from, as
 * scripts/native-hash.mjs recorded it beside the file (native-sources.sha256);
 * null for an addon built here, which has none.
 */
export function nativeSourceHash(file = nativeFile): string | null {
  try {
    const hash = readFileSync(join(dirname(file), 'native-sources.sha256'), 'utf8').trim();
    return /^[0-9a-f]{64}$/.test(hash) ? hash : null;
  } catch {
    return null;
  }
}
