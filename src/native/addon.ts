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

import type { CableDescriptor, FfsInterfaceSpec, PeerCredentials, UsbOpenRequest } from './addon-descriptors.js';
import type {
  CaptureOptions,
  DeviceRoleOptions,
  EngineStats,
  HostTunnelOptions,
  NativeEvent,
  PortTarget,
  RemoteTlsPem,
  TestServiceKind,
  TunnelConfig,
} from './engine-types.js';

export type * from './addon-descriptors.js';
export type * from './engine-types.js';

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
