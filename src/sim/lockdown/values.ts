// The simulated lockdownd's fixed answers: its type, what it tells a host
// before a session, the TLS it accepts, the notification a Trust tap posts.

export const LOCKDOWN_TYPE = 'com.apple.mobile.lockdown';

/** Default-domain keys a phone gives out before a session (reference §1.9, item 3). */
export const PRE_SESSION_KEYS: ReadonlySet<string> = new Set([
  'ProductVersion',
  'ProductType',
  'ProductName',
  'BuildVersion',
  'DeviceClass',
  'DeviceName',
  'UniqueDeviceID',
  'UniqueChipID',
  'DevicePublicKey',
  'WiFiAddress',
  'HardwareModel',
  'CPUArchitecture',
  'ProtocolVersion',
  'ActivationState',
  'TimeIntervalSince1970',
  'TimeZone',
  'TimeZoneOffsetFromUTC',
]);

/**
 * Answer to a verb this slice does not know. Not from the reference (it lists
 * no such error); a placeholder until checked against a real device.
 */
export const UNKNOWN_REQUEST_ERROR = 'InvalidRequest';

/** Posted (through the notification proxy) when the user accepts the dialog. */
export const REQUEST_PAIR_NOTIFICATION = 'com.apple.mobile.lockdown.request_pair';

/** The TLS versions and ciphers the simulated phone accepts (see §1.7.2). */
export const SESSION_TLS = {
  minVersion: 'TLSv1',
  maxVersion: 'TLSv1.2',
  // Level 0 only so that TLS 1.0 / RSA-CBC hosts (legacy profiles) can still
  // connect. Debian's libimobiledevice 1.3.0 (SHA-1 signed DeviceCertificate)
  // negotiates TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 with or without it.
  ciphers: 'DEFAULT:@SECLEVEL=0',
} as const;

/** The first iOS with CoreDeviceProxy; below it StartService answers InvalidService (idevice issue #3). */
export const CORE_DEVICE_PROXY_SINCE = '17.4';

/** Is a dotted version ("17.5", "17.4.1") at least `min`? Missing parts count as 0; text that is not a version is not. */
export function versionAtLeast(version: string, min: string): boolean {
  const parts = (v: string) => (/^\d+(\.\d+)*$/.test(v) ? v.split('.').map(Number) : undefined);
  const have = parts(version);
  const want = parts(min);
  if (!have || !want) return false;
  for (let i = 0; i < Math.max(have.length, want.length); i++) {
    const a = have[i] ?? 0;
    const b = want[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}
