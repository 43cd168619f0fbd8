// Writes the seed corpora (test/fuzz/corpus/ts-<target>/) from the project's
// own encoders, so every seed is a valid message of its protocol:
//   npm run build && node dist/test/fuzz/ts/make-corpus.js
// Regression inputs (named crash-*) are added by hand and left alone here.
import creator from 'bplist-creator';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { AfcOpcode, encodePacket, encodeKeyValues, encodePath, u64 } from '../../../src/afc/protocol.js';
import { encodeFrame as lockdownFrame } from '../../../src/lockdown/framing.js';
import { toXml, type PlistDict } from '../../../src/protocol/plist-codec.js';
import { plistMessage } from '../../../src/protocol/plist-message.js';
import {
  encodeConnectBinary,
  encodeDeviceAdd,
  encodeDeviceId,
  encodeMessage,
  encodeResultBinary,
  MessageType,
  ProtocolVersion,
  swapPort,
} from '../../../src/protocol/usbmux.js';
import { HANDSHAKE_A_FLAGS, HANDSHAKE_B_FLAGS, HANDSHAKE_C_FLAGS } from '../../../src/xpc/device-rules.js';
import {
  dataFrame,
  encodeFrame as h2Frame,
  frameBytes,
  goawayFrame,
  headersFrame,
  pingFrame,
  PREFACE,
  rstStreamFrame,
  settingsAckFrame,
  settingsFrame,
  windowUpdateFrame,
} from '../../../src/xpc/http2-frames.js';
import { encodeMessage as xpcMessage, XpcFlags } from '../../../src/xpc/message.js';
import { dict, int64, uint64, Uuid, XpcDate, XpcEndpoint, XpcFd, XpcFileTransfer } from '../../../src/xpc/values.js';
import { corpusDir, repoRoot } from './corpus.js';

const root = repoRoot();
const corpora = new Map<string, Map<string, Buffer>>();
const add = (target: string, name: string, bytes: Buffer) => {
  if (!corpora.has(target)) corpora.set(target, new Map());
  corpora.get(target)!.set(name, bytes);
};
const plistBody = (d: PlistDict) => Buffer.from(toXml(d), 'utf8');
const bplist = (d: unknown) => creator(d as never) as Buffer;

// ---- usbmux v0 (binary) ----
add('usbmux-v0', 'listen', encodeMessage(ProtocolVersion.Binary, MessageType.Listen, 1));
add('usbmux-v0', 'connect', encodeConnectBinary(2, 1, 62078));
add('usbmux-v0', 'connect-then-bytes', Buffer.concat([encodeConnectBinary(3, 7, 22), Buffer.from('SSH-2.0-x\r\n')]));
add('usbmux-v0', 'result', encodeResultBinary(4, 0));
add('usbmux-v0', 'device-add', encodeDeviceAdd({ deviceId: 9, productId: 0x12a8, serial: '00008030-001A2B3C4D5E6F70', location: 0x14100000 }));
add('usbmux-v0', 'device-remove', encodeDeviceId(MessageType.DeviceRemove, 9));
add('usbmux-v0', 'listen-then-connect', Buffer.concat([encodeMessage(0, MessageType.Listen, 1), encodeConnectBinary(2, 1, 1)]));

// ---- usbmux v1 (plist) ----
const client = { ProgName: 'ideviceinfo', ClientVersionString: 'libusbmuxd 2.0.2', BundleID: 'org.libimobiledevice.ideviceinfo', kLibUSBMuxVersion: 3 };
add('usbmux-v1', 'listen', plistMessage(1, { MessageType: 'Listen', ...client }));
add('usbmux-v1', 'list-devices', plistMessage(2, { MessageType: 'ListDevices', ...client }));
add('usbmux-v1', 'connect', plistMessage(3, { MessageType: 'Connect', DeviceID: 1, PortNumber: swapPort(62078), ...client }));
add('usbmux-v1', 'read-pair-record', plistMessage(4, { MessageType: 'ReadPairRecord', PairRecordID: '00008030-001A2B3C4D5E6F70', ...client }));
add('usbmux-v1', 'save-pair-record', plistMessage(5, { MessageType: 'SavePairRecord', PairRecordID: 'abc', PairRecordData: bplist({ HostID: 'H', SystemBUID: 'B', HostCertificate: Buffer.from('cert') }), DeviceID: 1, ...client }));
add('usbmux-v1', 'read-buid', plistMessage(6, { MessageType: 'ReadBUID', ...client }));
add('usbmux-v1', 'result', plistMessage(7, { MessageType: 'Result', Number: 0 }));
add('usbmux-v1', 'attached', plistMessage(0, { MessageType: 'Attached', DeviceID: 3, Properties: { ConnectionType: 'USB', DeviceID: 3, LocationID: 0, ProductID: 0x12a8, SerialNumber: 'abc', ConnectionSpeed: 480000000 } }));
add('usbmux-v1', 'two-requests', Buffer.concat([plistMessage(1, { MessageType: 'ReadBUID' }), plistMessage(2, { MessageType: 'Connect', DeviceID: 2, PortNumber: 0x7ef2 })]));
add('usbmux-v1', 'binary-plist-body', encodeMessage(1, MessageType.Plist, 8, bplist({ MessageType: 'Connect', DeviceID: 1, PortNumber: 0x7ef2 })));

// ---- plist bodies ----
const record: PlistDict = {
  DeviceCertificate: Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'),
  HostID: '5A7C1A3E-0000-4000-8000-000000000001',
  SystemBUID: 'F0E1D2C3-0000-4000-8000-000000000002',
  EscrowBag: Buffer.alloc(40, 7),
  WiFiMACAddress: 'aa:bb:cc:dd:ee:ff',
};
add('plist', 'pair-record.xml', plistBody(record));
add('plist', 'pair-record.bplist', bplist(record));
add('plist', 'mixed.xml', plistBody({ a: [1, -2, 3.5, true, false, 'x'], big: 2n ** 63n - 1n, neg: -(2n ** 60n), d: new Date(Date.UTC(2024, 1, 29)), e: {}, n: [] }));
add('plist', 'mixed.bplist', bplist({ a: [1, -2, 3.5, true, false, 'x'], d: new Date(Date.UTC(2024, 1, 29)), s: 'ü€😀', e: {}, n: [] }));
add('plist', 'connect.xml', plistBody({ MessageType: 'Connect', DeviceID: 1, PortNumber: 0x7ef2 }));
add('plist', 'string.xml', Buffer.from(toXml('just a string'), 'utf8'));

// ---- lockdown ----
add('lockdown', 'query-type', lockdownFrame({ Label: 'tsmuxd', Request: 'QueryType' }));
add('lockdown', 'get-value-reply', lockdownFrame({ Request: 'GetValue', Key: 'ProductVersion', Value: '17.4' }));
add('lockdown', 'start-session-reply', lockdownFrame({ Request: 'StartSession', SessionID: 'S', EnableSessionSSL: true }));
add('lockdown', 'error-reply', lockdownFrame({ Request: 'Pair', Error: 'PairingDialogResponsePending' }));
const binaryBody = bplist({ Request: 'StartService', Port: 49152, Service: 'com.apple.afc' });
const binaryFrame = Buffer.concat([Buffer.from([0, 0, 0, 0]), binaryBody]);
binaryFrame.writeUInt32BE(binaryBody.length, 0);
add('lockdown', 'binary-frame', binaryFrame);
add('lockdown', 'two-frames', Buffer.concat([lockdownFrame({ Request: 'QueryType', Type: 'com.apple.mobile.lockdown' }), lockdownFrame({ Request: 'GetValue', Value: { A: 1 } })]));
add('lockdown', 'tls-alert', Buffer.from([0x15, 3, 3, 0, 2, 1, 0]));

// ---- XPC ----
const handshakeA = xpcMessage({ flags: HANDSHAKE_A_FLAGS, messageId: 0n, body: new Map() });
add('xpc', 'empty-dict', handshakeA);
add('xpc', 'handshake-b', xpcMessage({ flags: HANDSHAKE_B_FLAGS, messageId: 0n }));
add('xpc', 'handshake-c', xpcMessage({ flags: HANDSHAKE_C_FLAGS, messageId: 0n }));
const request = xpcMessage({
  flags: XpcFlags.alwaysSet | XpcFlags.dataPresent | XpcFlags.wantingReply,
  messageId: 1n,
  body: dict({ MessageType: 'Handshake', MessagingProtocolVersion: uint64(3), Properties: dict({ RemoteXPCVersionFlags: uint64(0x100000000000006n) }) }),
});
add('xpc', 'handshake-request', request);
add('xpc', 'all-types', xpcMessage({
  flags: XpcFlags.alwaysSet | XpcFlags.dataPresent,
  messageId: 7n,
  body: dict({
    n: null, b: true, i: int64(-5), u: uint64(2n ** 64n - 1n), f: 1.5, t: new XpcDate(1700000000000000000n), d: Buffer.from([1, 2, 3]), s: 'héllo',
    id: new Uuid(Buffer.alloc(16, 0xab)), fd: new XpcFd(3), e: new XpcEndpoint(), ft: new XpcFileTransfer(9n, dict({ s: uint64(1024) })),
    a: [dict({ x: [] }), []],
  }),
}));
add('xpc', 'two-messages', Buffer.concat([handshakeA, request]));

// ---- HTTP/2 ----
const h2 = (...frames: Buffer[]) => Buffer.concat(frames);
add('http2', 'host-handshake', h2(
  PREFACE,
  frameBytes(settingsFrame([[3, 100], [4, 1048576]])),
  frameBytes(windowUpdateFrame(0, 983041)),
  frameBytes(headersFrame(1)),
  frameBytes(dataFrame(1, handshakeA)),
  frameBytes(headersFrame(3)),
  frameBytes(dataFrame(3, xpcMessage({ flags: HANDSHAKE_B_FLAGS, messageId: 0n }))),
));
add('http2', 'device-frames', h2(
  frameBytes(settingsFrame([[3, 100], [4, 1048576]])),
  frameBytes(settingsAckFrame()),
  frameBytes(dataFrame(1, request)),
  frameBytes(pingFrame(Buffer.alloc(8, 1))),
  frameBytes(rstStreamFrame(3, 5)),
  frameBytes(goawayFrame(3, 0, 'bye')),
));
add('http2', 'padded-data', h2(h2Frame(0, 0x8, 1, Buffer.from([2, 0x61, 0x62, 0, 0])), h2Frame(1, 0x24, 3, Buffer.from([0, 0, 0, 1, 16]))));
add('http2', 'unknown-type', h2(PREFACE, h2Frame(0xa, 0, 0, Buffer.from('x'))));
// The synthetic RSD session (device side) the XPC tests replay.
const fixture = JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'rsd-session.json'), 'utf8')) as {
  frames: Array<{ from: string; type: string; flags: number; stream: number; payload: string }>;
};
const typeCodes: Record<string, number> = { data: 0, headers: 1, settings: 4, windowUpdate: 8 };
add('http2', 'rsd-device-session', Buffer.concat(
  fixture.frames.filter((f) => f.from === 'device').map((f) => h2Frame(typeCodes[f.type]!, f.flags, f.stream, Buffer.from(f.payload, 'hex'))),
));
const rsdReply = fixture.frames.filter((f) => f.from === 'device' && f.type === 'data').map((f) => Buffer.from(f.payload, 'hex'));
add('xpc', 'rsd-services', rsdReply.reduce((a, b) => (b.length > a.length ? b : a)));

// ---- AFC ----
const afc = (op: number, data?: Buffer, payload?: Buffer) => Buffer.concat(encodePacket(op, 1n, data, payload));
add('afc', 'status-ok', afc(AfcOpcode.STATUS, u64(0)));
add('afc', 'file-info', afc(AfcOpcode.DATA, undefined, encodeKeyValues({ st_size: 4096, st_ifmt: 'S_IFDIR', st_nlink: 2 })));
add('afc', 'read-dir', Buffer.concat([afc(AfcOpcode.READ_DIR, encodePath('/DCIM')), afc(AfcOpcode.DATA, undefined, Buffer.from('.\0..\0' + '100APPLE\0'))]));
add('afc', 'file-write', afc(AfcOpcode.FILE_WRITE, u64(3), Buffer.alloc(64, 0x5a)));

for (const [target, files] of corpora) {
  const dir = corpusDir(target, root);
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
  console.log(`${dir}: ${files.size} seeds`);
}
