// Who a simulated phone says it is: the values lockdownd hands out, derived
// deterministically from the USB serial so one serial always yields the same
// UDID, ECID, serial number and Wi-Fi address. The RSA device key is made on
// first use (2048-bit generation is too slow to do for every peer eagerly),
// unless the phone's state directory already holds one.
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

import type { PlistDict } from '../protocol/plist-codec.js';
import { serialToUdid } from '../native/config-select.js';

export interface SimIdentityOptions {
  productType?: string;
  productVersion?: string;
  buildVersion?: string;
  hardwareModel?: string;
  deviceName?: string;
  deviceClass?: string;
}

export interface SimIdentity {
  /** The USB serial the peer reports. */
  usbSerial: string;
  /** UniqueDeviceID: the usbmuxd UDID (the serial, dashed after 8 for 24 characters). */
  udid: string;
  uniqueChipId: number | bigint;
  serialNumber: string;
  wifiAddress: string;
  productType: string;
  productVersion: string;
  buildVersion: string;
  hardwareModel: string;
  deviceName: string;
  deviceClass: string;
  /** PKCS#1 PEM (`BEGIN RSA PUBLIC KEY`) of the device key. */
  devicePublicKeyPem(): string;
  devicePrivateKey(): KeyObject;
  /** The default (no-Domain) lockdown domain, with live time values. */
  defaultDomain(): PlistDict;
  /** The named lockdown domains. */
  domains: Record<string, PlistDict>;
}

// Apple serial numbers use digits and upper-case letters without vowels-like
// look-alikes (no I or O).
const SERIAL_ALPHABET = '0123456789ABCDEFGHJKLMNPQRSTUVWXYZ';

function digest(seed: string, label: string): Buffer {
  return createHash('sha256').update(`${label}\0${seed}`).digest();
}

function chipIdFrom(udid: string): number | bigint {
  // New-style UDIDs carry the ECID after the dash; otherwise derive one.
  const m = /^[0-9A-F]{8}-([0-9A-F]{16})$/i.exec(udid);
  const id = m ? BigInt(`0x${m[1]}`) : digest(udid, 'ecid').readBigUInt64BE(0) >> 12n;
  return id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : id;
}

/** `deviceKey`: a stored RSA private key (src/sim/state.ts); otherwise one is made on first use. */
export function simIdentity(usbSerial: string, options: SimIdentityOptions = {}, deviceKey?: KeyObject): SimIdentity {
  const udid = serialToUdid(usbSerial);
  const serialBytes = digest(udid, 'serial');
  const serialNumber = Array.from(serialBytes.subarray(0, 10), (b) => SERIAL_ALPHABET[b % SERIAL_ALPHABET.length]).join('');
  const mac = digest(udid, 'wifi').subarray(0, 6);
  mac[0] = (mac[0]! & 0xfc) | 0x02; // locally administered, unicast
  const wifiAddress = Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');

  let keys: { publicPem: string; privateKey: KeyObject } | undefined;
  const deviceKeys = () => {
    if (!keys) {
      const pair = deviceKey
        ? { privateKey: deviceKey, publicKey: createPublicKey(deviceKey) }
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
      keys = {
        publicPem: pair.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
        privateKey: pair.privateKey,
      };
    }
    return keys;
  };

  const identity: SimIdentity = {
    usbSerial,
    udid,
    uniqueChipId: chipIdFrom(udid),
    serialNumber,
    wifiAddress,
    productType: options.productType ?? 'iPhone15,3',
    productVersion: options.productVersion ?? '17.5',
    buildVersion: options.buildVersion ?? '21F79',
    hardwareModel: options.hardwareModel ?? 'D74AP',
    deviceName: options.deviceName ?? 'Simulated iPhone',
    deviceClass: options.deviceClass ?? 'iPhone',
    devicePublicKeyPem: () => deviceKeys().publicPem,
    devicePrivateKey: () => deviceKeys().privateKey,
    defaultDomain() {
      return {
        ActivationState: 'Activated',
        BuildVersion: identity.buildVersion,
        CPUArchitecture: 'arm64e',
        DeviceClass: identity.deviceClass,
        DeviceName: identity.deviceName,
        DevicePublicKey: Buffer.from(identity.devicePublicKeyPem(), 'utf8'),
        HardwareModel: identity.hardwareModel,
        ProductName: 'iPhone OS',
        ProductType: identity.productType,
        ProductVersion: identity.productVersion,
        ProtocolVersion: '2',
        SerialNumber: identity.serialNumber,
        TimeIntervalSince1970: Date.now() / 1000,
        TimeZone: 'UTC',
        TimeZoneOffsetFromUTC: 0,
        UniqueChipID: identity.uniqueChipId,
        UniqueDeviceID: identity.udid,
        Uses24HourClock: true,
        WiFiAddress: identity.wifiAddress,
      };
    },
    domains: {
      'com.apple.international': { Language: 'en', Locale: 'en_US' },
      'com.apple.Accessibility': {
        AssistiveTouchEnabledByiTunes: 0,
        VoiceOverTouchEnabledByiTunes: 0,
        InvertDisplayEnabledByiTunes: 0,
      },
      'com.apple.mobile.wireless_lockdown': { EnableWifiConnections: false },
      'com.apple.security.mac.amfi': { DeveloperModeStatus: false },
    },
  };
  return identity;
}
