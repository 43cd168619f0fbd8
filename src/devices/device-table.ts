// The devices clients can see. Each attached device gets a DeviceID (from 1,
// never reused while the daemon runs, skipping any still in use) and becomes
// visible once its mux session is ready, or, with a preflight, when the
// preflight says so (reference §4.9). Clients hear Attached, Detached and
// Paired from here.
import { EventEmitter } from 'node:events';

import { connectionSpeed } from '../protocol/usbmux.js';
import type { AttachedDevice, MuxEngine } from '../native/mux-engine.js';
import type { NetworkEndpoint } from '../protocol/network-address.js';

/** Where a phone on the network is (src/wifi found it over mDNS). */
export interface NetworkLocation {
  endpoint: NetworkEndpoint;
  /** The mDNS instance, escaped as in DNS: `<mac>@<ip>._apple-mobdev2._tcp.local.` */
  serviceName: string;
  /** The interface it was found on (0 when unknown). */
  interfaceIndex: number;
}

/** A network entry has no engine handle: its handle is this, which no engine gives out. */
export const NETWORK_HANDLE = -1;
/** Nor has a remote host's phone (src/remote). */
export const REMOTE_HANDLE = -2;

/**
 * Local DeviceIDs stay below this: remote phones are (instance << 24) |
 * their remote DeviceID, as usbfluxd numbers them (instance 0 is local).
 */
export const LOCAL_DEVICE_ID_LIMIT = 1 << 24;

/** A phone on a remote usbmux host (docs/remote.md). */
export interface RemoteLocation {
  /** usbfluxd's instance number, 1-255: the DeviceID's top byte. */
  instance: number;
  /** Its DeviceID on the remote host. */
  remoteId: number;
  /** The remote's Properties, as it listed them (DeviceID replaced by ours when sent). */
  properties: Record<string, unknown>;
}

export interface DeviceRecord {
  deviceId: number;
  handle: number;
  /** The UDID: the USB serial, with a dash after 8 characters for 24-character serials. */
  serialNumber: string;
  usbSerialNumber: string;
  productId: number;
  locationId: number;
  connectionSpeed: number;
  connectionType: 'USB' | 'Network';
  visible: boolean;
  /** Network entries only. */
  network?: NetworkLocation;
  /** Remote entries only. */
  remote?: RemoteLocation;
}

export interface DeviceTableEvents {
  attached: [DeviceRecord];
  detached: [DeviceRecord];
  paired: [DeviceRecord];
}

export class DeviceTable extends EventEmitter<DeviceTableEvents> {
  private readonly byHandle = new Map<number, DeviceRecord>();
  /** Network entries by DeviceID: listed from the start, removed by src/wifi. */
  private readonly networkEntries = new Map<number, DeviceRecord>();
  /** Remote hosts' phones by DeviceID, added and removed by src/remote. */
  private readonly remoteEntries = new Map<number, DeviceRecord>();
  private nextId = 1;

  /** Set by the preflight: it decides when a ready device becomes visible. */
  onReady?: (d: DeviceRecord) => void;

  constructor(engine: MuxEngine) {
    super();
    engine.on('attached', (d) => this.add(d));
    engine.on('ready', ({ handle }) => {
      const d = this.byHandle.get(handle);
      if (!d) return;
      if (this.onReady) this.onReady(d);
      else this.show(handle);
    });
    engine.on('detached', ({ handle }) => this.remove(handle));
  }

  /** Visible devices, in DeviceID order. */
  visible(): DeviceRecord[] {
    return this.all().filter((d) => d.visible).sort((a, b) => a.deviceId - b.deviceId);
  }

  /** Any device, visible or not: Connect works on hidden ones (preflight uses it). */
  byId(deviceId: number): DeviceRecord | undefined {
    for (const d of this.byHandle.values()) if (d.deviceId === deviceId) return d;
    return this.networkEntries.get(deviceId) ?? this.remoteEntries.get(deviceId);
  }

  /** The device on an engine handle, visible or not. */
  forHandle(handle: number): DeviceRecord | undefined {
    return this.byHandle.get(handle);
  }

  /** The USB entry of this UDID when there is one (tunnels and preflight need the cable), else its network entry. */
  byUdid(udid: string): DeviceRecord | undefined {
    for (const d of this.byHandle.values()) if (d.serialNumber === udid) return d;
    for (const d of this.networkEntries.values()) if (d.serialNumber === udid) return d;
    for (const d of this.remoteEntries.values()) if (d.serialNumber === udid) return d;
    return undefined;
  }

  /** Still attached (and the same attachment)? */
  has(d: DeviceRecord): boolean {
    if (d.remote) return this.remoteEntries.get(d.deviceId) === d;
    return d.connectionType === 'Network' ? this.networkEntries.get(d.deviceId) === d : this.byHandle.get(d.handle) === d;
  }

  get size(): number {
    return this.byHandle.size + this.networkEntries.size + this.remoteEntries.size;
  }

  /**
   * Lists a remote host's phone under (instance << 24) | its remote
   * DeviceID and broadcasts Attached; undefined when that id is taken.
   */
  addRemote(remote: RemoteLocation, udid: string, connectionType: 'USB' | 'Network'): DeviceRecord | undefined {
    const deviceId = ((remote.instance << 24) | (remote.remoteId & 0xffffff)) >>> 0;
    if (this.remoteEntries.has(deviceId)) return undefined;
    const p = remote.properties;
    const num = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0);
    const d: DeviceRecord = {
      deviceId,
      handle: REMOTE_HANDLE,
      serialNumber: udid,
      usbSerialNumber: typeof p.USBSerialNumber === 'string' ? p.USBSerialNumber : udid.replace('-', ''),
      productId: num(p.ProductID),
      locationId: num(p.LocationID),
      connectionSpeed: num(p.ConnectionSpeed),
      connectionType,
      visible: true,
      remote,
    };
    this.remoteEntries.set(deviceId, d);
    this.emit('attached', d);
    return d;
  }

  /** A remote phone left (its host said Detached, or the host is gone): Detached. */
  removeRemote(d: DeviceRecord): void {
    if (this.remoteEntries.get(d.deviceId) !== d) return;
    this.remoteEntries.delete(d.deviceId);
    this.emit('detached', d);
  }

  /**
   * Lists a phone found on the network (its heartbeat runs) under a DeviceID
   * of its own, never one a USB entry has, and broadcasts Attached.
   */
  addNetwork(udid: string, location: NetworkLocation): DeviceRecord {
    const d: DeviceRecord = {
      deviceId: this.allocateId(),
      handle: NETWORK_HANDLE,
      serialNumber: udid,
      usbSerialNumber: udid.replace('-', ''),
      productId: 0,
      locationId: 0,
      connectionSpeed: 0,
      connectionType: 'Network',
      visible: true,
      network: location,
    };
    this.networkEntries.set(d.deviceId, d);
    this.emit('attached', d);
    return d;
  }

  /** The phone left the network (heartbeat stopped, mDNS record gone): Detached. */
  removeNetwork(d: DeviceRecord): void {
    if (this.networkEntries.get(d.deviceId) !== d) return;
    this.networkEntries.delete(d.deviceId);
    this.emit('detached', d);
  }

  private all(): DeviceRecord[] {
    return [...this.byHandle.values(), ...this.networkEntries.values(), ...this.remoteEntries.values()];
  }

  /** A pair record was saved for this device: tell the listeners. */
  paired(deviceId: number): boolean {
    const d = this.byId(deviceId);
    if (!d) return false;
    this.emit('paired', d);
    return true;
  }

  private allocateId(): number {
    const inUse = new Set(this.all().map((d) => d.deviceId));
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= LOCAL_DEVICE_ID_LIMIT - 1 ? 1 : this.nextId + 1;
      if (!inUse.has(id)) return id;
    }
  }

  private add(d: AttachedDevice): void {
    this.byHandle.set(d.handle, {
      deviceId: this.allocateId(),
      handle: d.handle,
      serialNumber: d.udid,
      usbSerialNumber: d.descriptor.serial,
      productId: d.descriptor.productId,
      // USB: (bus << 16) | address as usbmuxd. Cable devices have no bus;
      // the engine handle keeps the value unique.
      locationId: d.locationId ?? 0x10000 + d.handle,
      connectionSpeed: connectionSpeed(d.descriptor.speed),
      connectionType: 'USB',
      visible: false,
    });
  }

  /** Lists the device and broadcasts Attached (once). */
  show(handle: number): void {
    const d = this.byHandle.get(handle);
    if (!d || d.visible) return;
    d.visible = true;
    this.emit('attached', d);
  }

  private remove(handle: number): void {
    const d = this.byHandle.get(handle);
    if (!d) return;
    this.byHandle.delete(handle);
    if (d.visible) this.emit('detached', d);
  }
}
