// The reply to tsmuxd's stats request, typed for clients. The daemon sends
// the data plane's snapshot (src/native/addon.ts) with each handle's DeviceID and
// UDID and each connection's client; this side only checks the shape and
// turns plist integers back into numbers.
import type { ConnectionSnapshot, DeviceSnapshot, EngineStats } from '../native/addon.js';
import { isPlistDict, type PlistDict, type PlistValue } from '../protocol/plist-codec.js';
import { STATS_MESSAGE } from '../protocol/stats.js';
import { UsbmuxError } from './channel.js';

export { STATS_MESSAGE };

export interface DeviceStats extends DeviceSnapshot {
  /** Absent for a link the device table does not hold (rejected, or going away). */
  deviceId?: number;
  udid?: string;
  visible?: boolean;
}

export interface ConnectionStats extends ConnectionSnapshot {
  deviceId?: number;
  udid?: string;
  /** The usbmuxd client that opened it, and its ProgName, when the daemon knows. */
  client?: number;
  progName?: string;
  bundleId?: string;
}

export interface DaemonStats {
  statsVersion: number;
  /** The daemon's monotonic clock, in ms: rates come from two replies' difference. */
  timeMs: number;
  engine: Partial<EngineStats>;
  devices: DeviceStats[];
  connections: ConnectionStats[];
}

function plain(value: PlistValue): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value)) return value.map(plain);
  if (isPlistDict(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

function records(dict: PlistDict, key: string): Array<Record<string, unknown>> {
  const list = dict[key];
  if (!Array.isArray(list) || !list.every(isPlistDict)) {
    throw new UsbmuxError(`stats reply: '${key}' is not a list of dicts`, 'ERR_USBMUX_PROTOCOL');
  }
  return list.map((d) => plain(d) as Record<string, unknown>);
}

export function parseStatsReply(dict: PlistDict): DaemonStats {
  if (dict.MessageType !== STATS_MESSAGE) {
    throw new UsbmuxError(`stats reply: MessageType is '${String(dict.MessageType)}'`, 'ERR_USBMUX_PROTOCOL');
  }
  const number = (v: PlistValue | undefined) => (typeof v === 'number' || typeof v === 'bigint' ? Number(v) : NaN);
  const timeMs = number(dict.timeMs);
  if (!Number.isFinite(timeMs)) throw new UsbmuxError('stats reply: no timeMs', 'ERR_USBMUX_PROTOCOL');
  return {
    statsVersion: number(dict.statsVersion),
    timeMs,
    engine: isPlistDict(dict.engine) ? (plain(dict.engine) as Partial<EngineStats>) : {},
    devices: records(dict, 'devices') as unknown as DeviceStats[],
    connections: records(dict, 'connections') as unknown as ConnectionStats[],
  };
}
