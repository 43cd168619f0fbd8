// The shapes the engine speaks in: its events, captures, client arrivals,
// statistics and snapshots, port maps and tunnel configuration. Types only:
// importing them loads nothing.
import type { CableDescriptor, PeerCredentials } from './addon-descriptors.js';

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
