// The simulated phone on Wi-Fi: its services reachable over TCP at its
// address (network-front.ts) and its mDNS record (advertiser.ts). `off()`
// takes it off the network as walking out of range does: no more mDNS
// answers, no new connections, the open ones silent, so the host's
// heartbeat misses its Marco. `on()` brings it back and announces it again.
import { WIRELESS_LOCKDOWN_DOMAIN, type Lockdownd } from '../lockdown/lockdownd.js';
import type { ServicePorts } from '../service-ports.js';
import { MobdevAdvertiser } from './advertiser.js';
import { NetworkFront } from './network-front.js';

export interface SimWifiOptions {
  /** The phone's address on the network (IPv4 or IPv6, one of this host's). */
  address: string;
  /** A random MAC in the mDNS name, with identifier/authTag in TXT (iOS 26.4's private Wi-Fi address). */
  privateAddress?: boolean;
  /** Start with Wi-Fi connections off (default on); `tsmuxd wifi enable` turns them on. */
  enabled?: boolean;
}

export interface SimWifiParts {
  fixed: Record<number, string | number>;
  servicePorts: ServicePorts;
  wifiMac: string;
  hostIds: () => string[];
  /** lockdownd's EnableWifiConnections now. */
  enabled: boolean;
}

export interface SimWifi {
  readonly address: string;
  /** The mDNS instance name the phone announces. */
  readonly instance: string;
  readonly online: boolean;
  /** Back in range (wifi-on): answers and announces again, if Wi-Fi connections are on. */
  on(): Promise<void>;
  /** Out of range (wifi-off): silent, without a goodbye. */
  off(): Promise<void>;
  /** A host turned Wi-Fi connections on or off (lockdownd's SetValue). */
  setEnabled(enabled: boolean): Promise<void>;
  close(): Promise<void>;
}

export async function startSimWifi(options: SimWifiOptions, parts: SimWifiParts): Promise<SimWifi> {
  const front = await NetworkFront.start({ address: options.address, fixed: parts.fixed, servicePorts: parts.servicePorts });
  const advertiser = new MobdevAdvertiser({
    address: options.address,
    wifiMac: parts.wifiMac,
    privateAddress: options.privateAddress,
    hostIds: parts.hostIds,
  });
  // Two switches: in range (wifi-on / wifi-off) and the phone's setting.
  let inRange = true;
  let enabled = parts.enabled;
  const apply = async () => {
    if (inRange && enabled) {
      await front.on();
      advertiser.on();
    } else {
      advertiser.off();
      await front.off();
    }
  };
  try {
    await apply();
  } catch (err) {
    await front.close();
    throw err;
  }
  return {
    address: options.address,
    instance: advertiser.instance,
    get online() {
      return front.isOnline;
    },
    async on() {
      inRange = true;
      await apply();
    },
    async off() {
      inRange = false;
      await apply();
    },
    async setEnabled(value) {
      enabled = value;
      await apply();
    },
    async close() {
      await advertiser.close();
      await front.close();
    },
  };
}

/**
 * A phone's network side wired to its lockdownd: Wi-Fi connections on at the
 * start unless `options.enabled` is false (a phone announces itself only
 * with them on), and following every SetValue of EnableWifiConnections.
 */
export async function startPhoneOnWifi(
  options: SimWifiOptions,
  lockdownd: Lockdownd,
  fixed: Record<number, string | number>,
): Promise<SimWifi> {
  if (options.enabled !== false) lockdownd.identity.domains[WIRELESS_LOCKDOWN_DOMAIN]!.EnableWifiConnections = true;
  const wifi = await startSimWifi(options, {
    fixed,
    servicePorts: lockdownd.servicePorts,
    wifiMac: lockdownd.identity.wifiAddress,
    hostIds: () => lockdownd.pairRecords.hostIds(),
    enabled: lockdownd.wifiEnabled,
  });
  lockdownd.wifiSettingListeners.push((enabled) => {
    wifi.setEnabled(enabled).catch((err: Error) => process.stderr.write(`tsmuxd sim: Wi-Fi ${enabled ? 'on' : 'off'}: ${err.message}\n`));
  });
  return wifi;
}
