// The synthetic recorded session shipped as test/fixtures/rsd-session.json:
// pymobiledevice3's handshake ordering against an RSD endpoint, made from the
// reference's vectors (§3.1.3, §3.2) in the shape of the recorded session
// the RemoteXPC issue describes: 9 device frames, payloads 12, 4, 0, 0, 44,
// 0, 24, 24, 14124 (14,313 bytes with their headers). The peer-info's
// services are padded to hit 14,124 bytes exactly. Deterministic: the test
// checks the committed file is what this builds.
import {
  dataFrame,
  headersFrame,
  settingsAckFrame,
  settingsFrame,
  windowUpdateFrame,
  type Frame,
} from '../../src/xpc/http2-frames.js';
import { encodeMessage } from '../../src/xpc/message.js';
import { deviceSettingsFrames, PEER_INFO_FLAGS } from '../../src/xpc/device-rules.js';
import { buildPeerInfo, REMOTE_XPC_VERSION_FLAGS, type RsdServiceEntry } from '../../src/xpc/rsd.js';
import type { RecordedFrame, RecordedSession } from '../../src/xpc/replay.js';
import { dict, int64, uint64, Uuid, type XpcValue } from '../../src/xpc/values.js';

export const FIXTURE_PEER_INFO_BYTES = 14124;
/** A recorded UUID: replay must replace it. */
export const FIXTURE_UUID = Uuid.parse('6F1C2A9E-3B4D-4E5F-8A7B-9C0D1E2F3A4B');

const SERVICE_NAMES = [
  'com.apple.mobile.lockdown.remote.trusted',
  'com.apple.mobile.lockdown.remote.untrusted',
  'com.apple.afc.shim.remote',
  'com.apple.mobile.heartbeat.shim.remote',
  'com.apple.mobile.notification_proxy.shim.remote',
  'com.apple.mobile.insecure_notification_proxy.shim.remote',
  'com.apple.internal.devicecompute.CoreDeviceProxy',
  'com.apple.coredevice.appservice',
  'com.apple.coredevice.deviceinfo',
  'com.apple.coredevice.diagnosticsservice',
  'com.apple.coredevice.fileservice.control',
  'com.apple.coredevice.openstdiosocket',
  'com.apple.crashreportcopymobile.shim.remote',
  'com.apple.crashreportmover.shim.remote',
  'com.apple.mobile.installation_proxy.shim.remote',
  'com.apple.mobile.diagnostics_relay.shim.remote',
  'com.apple.syslog_relay.shim.remote',
  'com.apple.os_trace_relay.shim.remote',
  'com.apple.pcapd.shim.remote',
  'com.apple.springboardservices.shim.remote',
  'com.apple.mobile.house_arrest.shim.remote',
  'com.apple.misagent.shim.remote',
  'com.apple.mobile.mobile_image_mounter.shim.remote',
  'com.apple.mobilebackup2.shim.remote',
  'com.apple.mobile.assertion_agent.shim.remote',
  'com.apple.mobileactivationd.shim.remote',
  'com.apple.webinspector.shim.remote',
  'com.apple.mobile.screenshotr.shim.remote',
  'com.apple.mobile.file_relay.shim.remote',
  'com.apple.companion_proxy.shim.remote',
  'com.apple.preboardservice_v2.shim.remote',
  'com.apple.instruments.dtservicehub',
  'com.apple.dt.remoteFetchSymbols',
  'com.apple.security.cryptexd.remote',
  'com.apple.remote.installcoordination_proxy',
  'com.apple.dt.testmanagerd.remote',
  'com.apple.dt.testmanagerd.remote.automation',
  'com.apple.dt.ViewHierarchyAgent.remote',
  'com.apple.dt.remotepairingdeviced.lockdown.shim.remote',
  'com.apple.internal.dt.coredevice.untrusted.tunnelservice',
  'com.apple.mobile.storage_mounter_proxy.bridge',
  'com.apple.atc.shim.remote',
  'com.apple.atc2.shim.remote',
  'com.apple.accessibility.axAuditDaemon.remoteserver.shim.remote',
  'com.apple.amfi.lockdown.shim.remote',
  'com.apple.idamd.shim.remote',
  'com.apple.iosdiagnostics.relay.shim.remote',
  'com.apple.mobile.MCInstall.shim.remote',
  'com.apple.mobile.keybagd.lockdown.shim.remote',
  'com.apple.PurpleReverseProxy.Conn.shim.remote',
  'com.apple.PurpleReverseProxy.Ctrl.shim.remote',
  'com.apple.streaming_zip_conduit.shim.remote',
  'com.apple.bluetooth.BTPacketLogger.shim.remote',
  'com.apple.sysdiagnose.remote',
];

function services(padding: string): RsdServiceEntry[] {
  return SERVICE_NAMES.map((name, i) => {
    const xpc = !name.includes('shim') && !name.includes('lockdown');
    const features = xpc ? [`${name}.feature`, ...(name === 'com.apple.coredevice.appservice' ? [`padding.${padding}`] : [])] : [];
    return {
      name,
      port: 49152 + i * 7,
      properties: xpc
        ? dict({ UsesRemoteXPC: true, ServiceVersion: int64(1), Features: features })
        : dict({ UsesRemoteXPC: false, ServiceVersion: int64(1) }),
    };
  });
}

const properties = () =>
  dict({
    UniqueDeviceID: '00008120-001A2B3C4D5E6F70',
    ProductType: 'iPhone15,3',
    OSVersion: '17.5',
    BuildVersion: '21F79',
    UniqueChipID: int64(0x1a2b3c4d5e6f70),
    ChipID: int64(0x8120),
    BoardId: int64(12),
    DeviceClass: 'iPhone',
    HWModel: 'D74AP',
    HardwarePlatform: 't8120',
    CPUArchitecture: 'arm64e',
    ProductName: 'iPhone OS',
    HumanReadableProductVersionString: '17.5',
    RemoteXPCVersionFlags: uint64(REMOTE_XPC_VERSION_FLAGS),
    SensitivePropertiesVisible: true,
    SerialNumber: 'F2LX8K9PQ1',
    EthernetMacAddress: '8a:1b:2c:3d:4e:5f',
    BootSessionUUID: '0E9D8C7B-6A59-4837-A261-5F4E3D2C1B0A',
  });

/** The peer-info message, grown with padding in its Features strings to exactly `FIXTURE_PEER_INFO_BYTES`. */
export function fixturePeerInfoMessage(): Buffer {
  for (let pad = 0; pad < 8192; pad++) {
    const body = buildPeerInfo({ uuid: FIXTURE_UUID, properties: properties(), services: services('x'.repeat(pad)) });
    const bytes = encodeMessage({ flags: PEER_INFO_FLAGS, messageId: 1n, body });
    if (bytes.length === FIXTURE_PEER_INFO_BYTES) return bytes;
    if (bytes.length > FIXTURE_PEER_INFO_BYTES) throw new Error(`the peer-info is ${bytes.length} bytes before padding reaches the size`);
  }
  throw new Error('no padding gives the fixture peer-info size');
}

export function buildFixtureSession(): RecordedSession {
  const host = (f: Frame): RecordedFrame => ({ ...f, from: 'host' });
  const device = (f: Frame): RecordedFrame => ({ ...f, from: 'device' });
  const message = (flags: number, body?: Map<string, XpcValue>) => encodeMessage({ flags, messageId: 0n, body });
  const [settings, window] = deviceSettingsFrames();
  return {
    description:
      'Synthetic RSD session (pymobiledevice3 ordering) built from the reference vectors in the shape of the recorded one: ' +
      '9 device frames, payloads 12 4 0 0 44 0 24 24 14124. Generated by test/helpers/rsd-fixture.ts.',
    frames: [
      device(settings!),
      device(window!),
      host(settingsFrame([[3, 100], [4, 16777216]])),
      device(settingsAckFrame()),
      host(windowUpdateFrame(0, 16711681)),
      host(headersFrame(1)),
      device(headersFrame(1)),
      host(dataFrame(1, message(0x1, new Map()))),
      device(dataFrame(1, message(0x1, new Map()))),
      host(headersFrame(3)),
      device(headersFrame(3)),
      host(dataFrame(1, message(0x201))),
      device(dataFrame(1, message(0x201))),
      host(dataFrame(3, message(0x400001))),
      device(dataFrame(3, message(0x400001))),
      device(dataFrame(1, fixturePeerInfoMessage())),
      host(settingsAckFrame()),
    ],
  };
}
