// The stats request, a plist MessageType of our own: the data plane's
// snapshot (every device link and connection with bytes, windows and RTT)
// joined with what the control plane knows of each handle (DeviceID, UDID)
// and of each connection (which client opened it). Other daemons answer an
// unknown MessageType with Result 1, which is how `tsmuxd top` tells them
// apart.
import type { DeviceTable } from '../devices/device-table.js';
import type { MuxEngine } from '../native/mux-engine.js';
import type { PlistDict, PlistValue } from '../protocol/plist-codec.js';

import { STATS_MESSAGE, STATS_VERSION } from '../protocol/stats.js';

/** Who asked for a connection: the usbmuxd client and its ProgName. */
export interface ConnectionOwner {
  client: number;
  progName?: string;
  bundleId?: string;
}

/** What opened which connection, kept by the server while connections live. */
export class ConnectionOwners {
  private readonly owners = new Map<number, ConnectionOwner>();

  constructor(engine: MuxEngine) {
    engine.on('closed', (conn) => this.owners.delete(conn));
  }

  set(conn: number, owner: ConnectionOwner): void {
    this.owners.set(conn, owner);
  }

  delete(conn: number): void {
    this.owners.delete(conn);
  }

  get(conn: number): ConnectionOwner | undefined {
    return this.owners.get(conn);
  }

  /**
   * Forgets connections the engine no longer has: a connection that closed in
   * the same event batch that connected it is closed before it is noted here.
   */
  prune(live: Set<number>): void {
    for (const conn of this.owners.keys()) if (!live.has(conn)) this.owners.delete(conn);
  }
}

/** A plist dict from a flat record, leaving out absent values (plists have no null). */
function plistRecord(record: object): PlistDict {
  const out: PlistDict = {};
  for (const [k, v] of Object.entries(record)) if (v !== undefined && v !== null) out[k] = v as PlistValue;
  return out;
}

export async function statsReply(engine: MuxEngine, devices: DeviceTable, owners: ConnectionOwners): Promise<PlistDict> {
  const snap = await engine.snapshot();
  const live = new Set(snap.connections.map((c) => c.conn));
  owners.prune(live);
  const identity = (handle: number) => {
    const d = devices.forHandle(handle);
    return d ? { deviceId: d.deviceId, udid: d.serialNumber, visible: d.visible } : {};
  };
  return {
    MessageType: STATS_MESSAGE,
    statsVersion: STATS_VERSION,
    timeMs: snap.timeMs,
    engine: plistRecord(engine.stats()),
    devices: snap.devices.map((d) => plistRecord({ ...d, ...identity(d.handle) })),
    connections: snap.connections.map((c) => {
      const owner = owners.get(c.conn);
      const { visible: _visible, ...id } = identity(c.handle);
      return plistRecord({ ...c, ...id, client: owner?.client, progName: owner?.progName, bundleId: owner?.bundleId });
    }),
  };
}
