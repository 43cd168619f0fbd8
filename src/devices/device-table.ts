// The devices clients can see. Each attached device gets a DeviceID (from 1,
// never reused while the daemon runs, skipping any still in use) and becomes
// visible once its mux session is ready, or, with a preflight, when the
// preflight says so (reference §4.9). Clients hear Attached, Detached and
// Paired from here.
import { EventEmitter } from 'node:events';

import { connectionSpeed } from '../protocol/usbmux.js';
import type { AttachedDevice, MuxEngine } from '../native/mux-engine.js';

export interface DeviceRecord {
  deviceId: number;
  handle: number;
  /** The UDID: the USB serial, with a dash after 8 characters for 24-character serials. */
  serialNumber: string;
  usbSerialNumber: string;
  productId: number;
  locationId: number;
  connectionSpeed: number;
  connectionType: 'USB';
  visible: boolean;
}

export interface DeviceTableEvents {
  attached: [DeviceRecord];
  detached: [DeviceRecord];
  paired: [DeviceRecord];
}

export class DeviceTable extends EventEmitter<DeviceTableEvents> {
  private readonly byHandle = new Map<number, DeviceRecord>();
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
    return [...this.byHandle.values()].filter((d) => d.visible).sort((a, b) => a.deviceId - b.deviceId);
  }

  /** Any device, visible or not: Connect works on hidden ones (preflight uses it). */
  byId(deviceId: number): DeviceRecord | undefined {
    for (const d of this.byHandle.values()) if (d.deviceId === deviceId) return d;
    return undefined;
  }

  /** The device on an engine handle, visible or not. */
  forHandle(handle: number): DeviceRecord | undefined {
    return this.byHandle.get(handle);
  }

  byUdid(udid: string): DeviceRecord | undefined {
    for (const d of this.byHandle.values()) if (d.serialNumber === udid) return d;
    return undefined;
  }

  /** Still attached (and the same attachment)? */
  has(d: DeviceRecord): boolean {
    return this.byHandle.get(d.handle) === d;
  }

  get size(): number {
    return this.byHandle.size;
  }

  /** A pair record was saved for this device: tell the listeners. */
  paired(deviceId: number): boolean {
    const d = this.byId(deviceId);
    if (!d) return false;
    this.emit('paired', d);
    return true;
  }

  private allocateId(): number {
    const inUse = new Set([...this.byHandle.values()].map((d) => d.deviceId));
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
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
