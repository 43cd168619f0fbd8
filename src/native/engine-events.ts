// What the engine tells the control plane (MuxEngine's typed events) and the
// options it starts with: the shapes only, so that modules which listen to
// the engine can name them without the engine's code.
import type { CableDescriptor, ClientArrival } from './addon.js';
import type { MuxSelection } from './config-select.js';

export interface AttachedDevice {
  handle: number;
  /** What carries the device: the virtual cable or libusb. */
  link: 'cable' | 'usb';
  /** USB only: (bus << 16) | address. */
  locationId?: number;
  udid: string;
  descriptor: Required<CableDescriptor>;
  selection: MuxSelection;
}

export interface LogEntry {
  handle?: number;
  conn?: number;
  level: 'error' | 'warning' | 'info' | 'debug';
  text: string;
}

export interface ClosedInfo {
  reason: string;
  bytesIn: number;
  bytesOut: number;
}

export interface MuxEngineOptions {
  /** Receive window we advertise per connection, in bytes. */
  window?: number;
  connectTimeoutMs?: number;
  /**
   * How long a device's window may stay shut while a client has bytes for it
   * before the connection is reset (native default 120 s; 0 = never).
   */
  zeroWindowTimeoutMs?: number;
}

/** Device role: the host's CDTunnel request arrived on a CoreDeviceProxy port. */
export interface TunnelRequestEvent {
  handle: number;
  tunnel: number;
  /** The clientHandshakeRequest JSON, unchecked. */
  body: string;
}

export interface TunnelClosedEvent {
  handle: number;
  tunnel: number;
  code: string;
  reason: string;
}

export interface MuxEngineEvents {
  attached: [AttachedDevice];
  rejected: [{ handle: number; reason: string; descriptor: Required<CableDescriptor> }];
  ready: [{ handle: number; version: number }];
  detached: [{ handle: number; code: string; reason: string }];
  log: [LogEntry];
  closed: [number, ClosedInfo];
  /** Device role only: the host role's handshakes settle startTunnel(). */
  tunnelHandshake: [TunnelRequestEvent];
  tunnelClosed: [TunnelClosedEvent];
  /** A usbmuxd client from the front door (openClientDoor). */
  clientArrived: [ClientArrival];
  /** Remote usbmux (docs/remote.md): a dialled Connect's answer; a TLS session up. */
  remoteReply: [number, Buffer];
  remoteSecure: [number, string];
}
