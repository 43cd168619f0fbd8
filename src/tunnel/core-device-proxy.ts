// The lockdown half of a tunnel start: a session with the stored pair record
// (through the engine, as the preflight reaches lockdownd), StartService of
// CoreDeviceProxy, and the host identity its TLS needs. The mux connection
// to the port it returns and everything after it are the data plane's.
import type { DeviceRecord } from '../devices/device-table.js';
import { LockdownClient, LOCKDOWN_PORT } from '../lockdown/client.js';
import { LockdownError } from '../lockdown/errors.js';
import { openLoopbackClient } from '../native/loopback-client.js';
import type { MuxEngine } from '../native/mux-engine.js';
import { hostCredentials } from '../pairing/certificates.js';
import type { PairRecordStore } from '../pairing/store.js';
import { CORE_DEVICE_PROXY_SERVICE } from '../protocol/cdtunnel.js';
import type { PlistDict } from '../protocol/plist-codec.js';
import { TunnelError } from './errors.js';

export const NO_CORE_DEVICE_PROXY = 'this device has no CoreDeviceProxy (iOS 17.4+)';
/** The first iOS with CoreDeviceProxy (reference tunnel-wifi-remote §1). */
export const CORE_DEVICE_PROXY_SINCE = [17, 4] as const;

/** Is a dotted version ("16.7", "17.3.1") below 17.4? Text that is not a version is not (the phone is asked). */
export function predatesCoreDeviceProxy(version: string): boolean {
  if (!/^\d+(\.\d+)*$/.test(version)) return false;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major < CORE_DEVICE_PROXY_SINCE[0] || (major === CORE_DEVICE_PROXY_SINCE[0] && minor < CORE_DEVICE_PROXY_SINCE[1]);
}

export interface LockdownReach {
  engine: MuxEngine;
  store: PairRecordStore;
  /** Where the in-process client sockets are made. */
  socketDir: string;
  lockdownTimeoutMs?: number;
}

export interface CoreDeviceProxyService {
  /** The one-connection device port StartService handed out. */
  port: number;
  /** The pair record's HostCertificate and HostPrivateKey, PEM. */
  certPem: string;
  keyPem: string;
}

async function pairRecord(store: PairRecordStore, udid: string): Promise<{ record: PlistDict; hostId: string; cert: Buffer; key: Buffer }> {
  let record: PlistDict;
  try {
    record = await store.readRecord(udid);
  } catch (err) {
    throw new TunnelError(`${udid} has no usable pair record (${(err as Error).message}); pair it first (tsmuxd pair ${udid})`, 'ENOTPAIRED');
  }
  if (typeof record.HostID !== 'string') throw new TunnelError(`the pair record of ${udid} has no HostID; pair it again`, 'ENOTPAIRED');
  try {
    return { record, hostId: record.HostID, ...hostCredentials(record) };
  } catch (err) {
    throw new TunnelError(`the pair record of ${udid}: ${(err as Error).message}; pair it again`, 'ENOTPAIRED');
  }
}

export async function startCoreDeviceProxyService(reach: LockdownReach, device: DeviceRecord): Promise<CoreDeviceProxyService> {
  const udid = device.serialNumber;
  const { hostId, cert, key } = await pairRecord(reach.store, udid);
  const buid = await reach.store.systemBUID();
  const { socket } = await openLoopbackClient(reach.engine, device.handle, LOCKDOWN_PORT, reach.socketDir);
  const lockdown = new LockdownClient(socket, { label: 'tsmuxd', timeoutMs: reach.lockdownTimeoutMs });
  try {
    await lockdown.startSession(hostId, buid, { cert, key });
    // Asking an older phone for the service would only fail; its version says so first.
    const version = await lockdown.getValue('ProductVersion');
    if (typeof version === 'string' && predatesCoreDeviceProxy(version)) {
      throw new TunnelError(`${NO_CORE_DEVICE_PROXY}; it runs iOS ${version}`, 'ENOCOREDEVICEPROXY');
    }
    let service: { port: number; ssl: boolean };
    try {
      service = await lockdown.startService(CORE_DEVICE_PROXY_SERVICE);
    } catch (err) {
      if (err instanceof LockdownError && err.code === 'InvalidService') throw new TunnelError(NO_CORE_DEVICE_PROXY, 'ENOCOREDEVICEPROXY');
      throw err;
    }
    // The native side always runs TLS on it; a phone always asks for it.
    if (!service.ssl) throw new TunnelError('StartService CoreDeviceProxy came without EnableServiceSSL', 'EPROTO');
    return { port: service.port, certPem: cert.toString('utf8'), keyPem: key.toString('utf8') };
  } finally {
    // The service port outlives this connection, as on a phone.
    await lockdown.close();
  }
}
