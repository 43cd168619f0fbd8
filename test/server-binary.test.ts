// A hand-made version-0 (binary) client on a raw socket, byte for byte
// against the reference's Appendix A: Listen and its Result, the 284-byte
// DEVICE_ADD, binary Connect with the port in network order, and bytes
// pipelined behind a Connect.
import { createHash, randomBytes } from 'node:crypto';

import { join } from 'node:path';

import t from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { startPeer } from '../src/sim/peer.js';
import { SINK_PORT } from '../src/protocol/sim-ports.js';
import {
  binaryConnect,
  binaryResult,
  frame,
  hex,
  plistRequest,
  RawClient,
  startDaemon,
  tempDir,
  type DaemonSetup,
} from './helpers/usbmuxd-harness.js';

// Appendix A, verbatim.
const LISTEN_TAG1 = Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0x01, 0, 0, 0]);
const RESULT_OK_TAG1 = Buffer.from([0x14, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0]);
/** Appendix A's Connect (tag 2) with a chosen device id and port bytes. */
function appendixConnect(deviceId: number, portHi: number, portLo: number): Buffer {
  const b = Buffer.from([0x18, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, portHi, portLo, 0, 0]);
  b.writeUInt32LE(deviceId, 16);
  return b;
}
const RESULT_TAG2 = (n: number) => Buffer.from([0x14, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0x02, 0, 0, 0, n, 0, 0, 0]);

let setup: DaemonSetup;
let deviceId: number;
let serial: string;
let location: number;
let cable: string;

t.before(async () => {
  cable = join(tempDir(t), 'cable');
  setup = await startDaemon(t, { sims: 1, cables: [cable] });
  const d = setup.daemon.devices.visible()[0];
  deviceId = d.deviceId;
  serial = d.serialNumber;
  location = d.locationId;
});

t.test('the Appendix A Listen gets the Appendix A Result, then a 284-byte DEVICE_ADD', async (t) => {
  t.equal(hex(binaryResult(1, 0)), hex(RESULT_OK_TAG1), 'the helper agrees with Appendix A');
  const c = await RawClient.open(t, setup.socketPath);
  c.send(LISTEN_TAG1);
  const result = await c.read(20);
  t.equal(hex(result), hex(RESULT_OK_TAG1), 'exactly the Result OK bytes, tag 1');

  const add = await c.read(284);
  t.equal(add.readUInt32LE(0), 284, 'DEVICE_ADD length 284');
  t.equal(add.readUInt32LE(4), 0, 'version 0');
  t.equal(add.readUInt32LE(8), 4, 'message 4 (DEVICE_ADD)');
  t.equal(add.readUInt32LE(12), 0, 'tag 0 for a notification');
  const rec = add.subarray(16);
  t.equal(rec.length, 268, 'a 268-byte device record');
  t.equal(rec.readUInt32LE(0), deviceId, 'u32 device id');
  t.equal(rec.readUInt16LE(4), 0x12a8, 'u16 product id');
  const serialField = rec.subarray(6, 262);
  const nul = serialField.indexOf(0);
  t.equal(serialField.subarray(0, nul).toString('latin1'), serial, 'serial (the dashed UDID) in the 256-byte field');
  t.ok(serialField.subarray(nul).every((x) => x === 0), 'the serial is NUL-terminated and the rest of the field is zero');
  t.equal(rec.readUInt16LE(262), 0, 'u16 padding is zero');
  t.equal(rec.readUInt32LE(264), location, 'u32 location');

  const more = await c.drain(300);
  t.equal(more.length, 0, 'nothing else while nothing changes');
  t.notOk(c.closed, 'the Listen socket stays open');
});

t.test('binary Connect (port in network order) to port 7 is a raw echo pipe', async (t) => {
  const c = await RawClient.open(t, setup.socketPath);
  const req = appendixConnect(deviceId, 0x00, 0x07);
  t.equal(hex(req), hex(binaryConnect(2, deviceId, 7)), 'the helper agrees with the hand-written bytes');
  c.send(req);
  t.equal(hex(await c.read(20)), hex(RESULT_TAG2(0)), 'Result 0 with tag 2, byte for byte');
  const payload = randomBytes(100_000);
  c.send(payload);
  const back = await c.read(payload.length);
  t.ok(back.equals(payload), '100 kB echoed unchanged');
  // Something that looks like a command is now just data.
  c.send(LISTEN_TAG1);
  t.equal(hex(await c.read(16)), hex(LISTEN_TAG1), 'a Listen header after Connect is echoed, not answered');
  t.equal((await c.drain(200)).length, 0, 'and nothing else comes');
});

t.test('the binary port is read in network order', async (t) => {
  const c = await RawClient.open(t, setup.socketPath);
  // 07 00 is port 1792, not 7.
  c.send(appendixConnect(deviceId, 0x07, 0x00));
  t.equal(hex(await c.read(20)), hex(RESULT_TAG2(3)), 'port bytes 07 00 (1792) are refused: Result 3');
  // A refused Connect leaves the socket in command state.
  c.send(appendixConnect(deviceId, 0x00, 0x07));
  t.equal(hex(await c.read(20)), hex(RESULT_TAG2(0)), 'a second Connect on the same socket succeeds');
  c.send('ok');
  t.equal((await c.read(2)).toString(), 'ok');
  // The Appendix A example's own port, 62078 (F2 7E), is the sim's lockdownd.
  const l = await RawClient.open(t, setup.socketPath);
  l.send(appendixConnect(deviceId, 0xf2, 0x7e));
  t.equal(hex(await l.read(20)), hex(RESULT_TAG2(0)), 'F2 7E (62078) reaches lockdownd: Result 0');
});

t.test('binary Connect to an unknown device answers BADDEV (2)', async (t) => {
  const c = await RawClient.open(t, setup.socketPath);
  c.send(appendixConnect(deviceId + 1000, 0x00, 0x07));
  t.equal(hex(await c.read(20)), hex(RESULT_TAG2(2)), 'Result 2');
  c.send(LISTEN_TAG1);
  t.equal(hex(await c.read(20)), hex(RESULT_OK_TAG1), 'the socket still takes commands');
});

t.test('bytes pipelined right after Connect go to the device', async (t) => {
  await t.test('in the same write as the request (echo)', async (t) => {
    const c = await RawClient.open(t, setup.socketPath);
    const early = Buffer.concat([Buffer.from('early bytes;'), LISTEN_TAG1, frame(0, 2, 5, Buffer.alloc(8))]);
    c.send(Buffer.concat([appendixConnect(deviceId, 0x00, 0x07), early]));
    t.equal(hex(await c.read(20)), hex(RESULT_TAG2(0)), 'one Result 0, nothing parsed from the pipelined bytes');
    t.equal(hex(await c.read(early.length)), hex(early), 'the pipelined bytes are echoed, in order');
    c.send('late');
    t.equal((await c.read(4)).toString(), 'late', 'bytes after the Result follow them');
    t.equal((await c.drain(200)).length, 0, 'no stray Result for the command-shaped bytes');
  });

  await t.test('in separate writes before the Result is read (sink hashes them)', async (t) => {
    const c = await RawClient.open(t, setup.socketPath);
    const data = randomBytes(300_000);
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(data.length));
    c.send(appendixConnect(deviceId, 0x00, SINK_PORT));
    c.send(len);
    c.send(data.subarray(0, 1000));
    c.send(data.subarray(1000));
    t.equal(hex(await c.read(20)), hex(RESULT_TAG2(0)), 'Result 0');
    const digest = await c.read(32);
    t.equal(digest.toString('hex'), createHash('sha256').update(data).digest('hex'), 'the sink got exactly the pipelined bytes');
  });

  await t.test('after a refused Connect, pipelined bytes are commands again', async (t) => {
    const c = await RawClient.open(t, setup.socketPath);
    c.send(Buffer.concat([appendixConnect(deviceId, 0x12, 0x34), LISTEN_TAG1]));
    t.equal(hex(await c.read(20)), hex(RESULT_TAG2(3)), 'Result 3 for the refused Connect');
    t.equal(hex(await c.read(20)), hex(RESULT_OK_TAG1), 'then the pipelined Listen is answered');
    const add = await c.read(284);
    t.equal(add.readUInt32LE(8), 4, 'and a DEVICE_ADD follows');
  });
});

t.test('a binary message other than Listen/Connect answers BADCOMMAND (1)', async (t) => {
  const c = await RawClient.open(t, setup.socketPath);
  c.send(frame(0, 8, 9, Buffer.from('<plist/>')));
  t.equal(hex(await c.read(20)), hex(binaryResult(9, 1)), 'message 8 with version 0: Result 1');
  c.send(frame(0, 1, 10, Buffer.alloc(4)));
  t.equal(hex(await c.read(20)), hex(binaryResult(10, 1)), 'a client-sent RESULT: Result 1');
  c.send(frame(0, 2, 11, Buffer.alloc(2)));
  t.equal(hex(await c.read(20)), hex(binaryResult(11, 1)), 'a short Connect body: Result 1');
  c.send(plistRequest(12, { MessageType: 'ListDevices' }));
  const list = await c.readPlist();
  t.equal(list.frame.version, 1, 'a plist request on the same socket gets a plist reply');
  t.equal((list.dict.DeviceList as unknown[]).length, 1);
});

t.test('binary notifications: DEVICE_ADD, DEVICE_PAIRED and DEVICE_REMOVE', async (t) => {
  const c = await RawClient.open(t, setup.socketPath);
  c.send(LISTEN_TAG1);
  t.equal(hex(await c.read(20)), hex(RESULT_OK_TAG1));
  t.equal((await c.read(284)).readUInt32LE(16), deviceId, 'the present phone first');

  const peer = await startPeer({ cable });
  t.teardown(() => peer.close());
  const add = await c.read(284);
  t.equal(hex(add.subarray(0, 16)), hex(Buffer.from('1c010000000000000400000000000000', 'hex')), 'DEVICE_ADD header: 284, v0, message 4, tag 0');
  const newId = add.readUInt32LE(16);
  t.ok(newId > deviceId, `the new phone gets a new DeviceID (${newId})`);
  const newSerial = add.subarray(22, 278).toString('latin1').replace(/\0.*$/s, '');
  t.equal(newSerial.replace('-', ''), peer.serial, 'its serial');

  const record = Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>HostID</key><string>x</string></dict></plist>');
  await new UsbmuxClient({ address: setup.address }).savePairRecord(newSerial, record, newId);
  const paired = await c.read(20);
  const expectPaired = Buffer.from('14000000000000000600000000000000', 'hex');
  t.equal(hex(paired.subarray(0, 16)), hex(expectPaired), 'DEVICE_PAIRED header: 20, v0, message 6, tag 0');
  t.equal(paired.readUInt32LE(16), newId, 'with the DeviceID');
  await new UsbmuxClient({ address: setup.address }).deletePairRecord(newSerial);

  await peer.close();
  const removed = await c.read(20);
  t.equal(hex(removed.subarray(0, 16)), hex(Buffer.from('14000000000000000500000000000000', 'hex')), 'DEVICE_REMOVE header: 20, v0, message 5, tag 0');
  t.equal(removed.readUInt32LE(16), newId, 'with the DeviceID');
  t.equal((await c.drain(300)).length, 0, 'nothing else');
});
