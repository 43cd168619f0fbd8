// The FunctionFS side of the simulated phone, as far as it runs without a
// USB gadget: the bytes it writes to ep0 (checked field by field against the
// FunctionFS v2 layout), and how it refuses what is not a FunctionFS mount.
// The transport itself runs against a real gadget in the QEMU lab
// (npm run test:usb, lab/README.md).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import { MuxEngine } from '../src/native/mux-engine.js';
import { NativeError } from '../src/native/addon.js';
import { nativeTesting } from '../src/native/testing.js';
import { PHONE_FFS_INTERFACES } from '../src/sim/descriptor.js';
import { runSimCommand } from '../src/cli/sim-command.js';
import { startPeer } from '../src/sim/peer.js';
import { tempDir, wire } from './helpers/harness.js';

const FUNCTIONFS_DESCRIPTORS_MAGIC_V2 = 3;
const FUNCTIONFS_STRINGS_MAGIC = 2;
const HAS_FS_DESC = 1;
const HAS_HS_DESC = 2;

t.test('descriptors: v2 header, then interface + bulk OUT + bulk IN at full and high speed', async (t) => {
  const { descriptors: d } = wire.encodeFfsDescriptors();
  t.equal(d.readUInt32LE(0), FUNCTIONFS_DESCRIPTORS_MAGIC_V2, 'v2 magic');
  t.equal(d.readUInt32LE(4), d.length, 'the length field is the whole blob');
  t.equal(d.readUInt32LE(8), HAS_FS_DESC | HAS_HS_DESC, 'full- and high-speed descriptors, nothing else');
  t.equal(d.readUInt32LE(12), 3, 'three full-speed descriptors');
  t.equal(d.readUInt32LE(16), 3, 'three high-speed descriptors');
  t.equal(d.length, 20 + 2 * (9 + 7 + 7));
  for (const [speed, at, mps] of [['full', 20, 64], ['high', 43, 512]] as const) {
    t.same([...d.subarray(at, at + 9)], [9, 4, 0, 0, 2, 0xff, 0xfe, 0x02, 1], `${speed} speed: interface ff/fe/02, 2 endpoints, string 1`);
    const out = d.subarray(at + 9, at + 16);
    const inn = d.subarray(at + 16, at + 23);
    t.same([out[0], out[1], out[2], out[3], out[6]], [7, 5, 0x01, 2, 0], `${speed} speed: bulk OUT first (ep1), as a phone lists them`);
    t.same([inn[0], inn[1], inn[2], inn[3], inn[6]], [7, 5, 0x82, 2, 0], `${speed} speed: then bulk IN (ep2)`);
    t.equal(out.readUInt16LE(4), mps, `${speed} speed: OUT wMaxPacketSize ${mps}`);
    t.equal(inn.readUInt16LE(4), mps, `${speed} speed: IN wMaxPacketSize ${mps}`);
  }
});

t.test('strings: one en-US string, the interface name', async (t) => {
  const { strings: s } = wire.encodeFfsDescriptors();
  t.equal(s.readUInt32LE(0), FUNCTIONFS_STRINGS_MAGIC);
  t.equal(s.readUInt32LE(4), s.length);
  t.equal(s.readUInt32LE(8), 1, 'str_count');
  t.equal(s.readUInt32LE(12), 1, 'lang_count');
  t.equal(s.readUInt16LE(16), 0x0409, 'en-US');
  t.equal(s.subarray(18).toString('latin1'), 'Apple USB Multiplexor\0', 'NUL-terminated');
});

t.test('a custom interface is written as given', async (t) => {
  const { descriptors: d, strings: s } = wire.encodeFfsDescriptors({ interfaceClass: 6, subclass: 1, protocol: 1, name: 'PTP', fullSpeedMaxPacket: 8 });
  t.same([...d.subarray(25, 28)], [6, 1, 1]);
  t.equal(d.readUInt16LE(20 + 9 + 4), 8);
  t.equal(s.subarray(18).toString('latin1'), 'PTP\0');
});

t.test("a phone's PTP placeholder: bulk IN, bulk OUT, interrupt IN, in that order", async (t) => {
  const { descriptors: d, strings: s } = wire.encodeFfsDescriptors(PHONE_FFS_INTERFACES.ptp);
  t.equal(d.readUInt32LE(12), 4, 'interface + 3 endpoints at full speed');
  t.equal(d.readUInt32LE(16), 4, 'and at high speed');
  t.equal(d.length, 20 + 2 * (9 + 3 * 7));
  for (const [speed, at, bulk, interval] of [['full', 20, 64, 8], ['high', 50, 512, 7]] as const) {
    t.same([...d.subarray(at, at + 9)], [9, 4, 0, 0, 3, 6, 1, 1, 1], `${speed} speed: interface 6/1/1 with 3 endpoints`);
    const eps = [0, 1, 2].map((i) => d.subarray(at + 9 + 7 * i, at + 16 + 7 * i));
    t.same(eps.map((e) => [e[2], e[3]]), [[0x81, 2], [0x02, 2], [0x83, 3]], `${speed} speed: addresses and types`);
    t.same(eps.map((e) => e.readUInt16LE(4)), [bulk, bulk, 64], `${speed} speed: wMaxPacketSize`);
    t.equal(eps[2]![6], interval, `${speed} speed: bInterval ${interval} (8 ms)`);
  }
  t.equal(s.subarray(18).toString('latin1'), 'PTP\0');
});

t.test('an interface without endpoints (the audio placeholder)', async (t) => {
  const { descriptors: d } = wire.encodeFfsDescriptors(PHONE_FFS_INTERFACES.audio);
  t.equal(d.readUInt32LE(12), 1);
  t.equal(d.readUInt32LE(16), 1);
  t.same([...d.subarray(20, 29)], [9, 4, 0, 0, 0, 1, 1, 0, 1]);
  t.equal(d.length, 20 + 2 * 9);
});

t.test('endpoint specs are checked', async (t) => {
  const bad: [object, RegExp][] = [
    [{ endpoints: [{ direction: 'sideways' }] }, /direction 'in' or 'out'/],
    [{ endpoints: [{ direction: 'in', type: 'iso' }] }, /type 'bulk' or 'interrupt'/],
    [{ endpoints: [{ direction: 'in', type: 'interrupt', maxPacketSize: 65 }] }, /wMaxPacketSize 1\.\.64/],
    [{ endpoints: [{ direction: 'in', type: 'interrupt', maxPacketSize: 0 }] }, /wMaxPacketSize 1\.\.64/],
    [{ endpoints: [{ direction: 'in', type: 'interrupt', intervalMs: 0 }] }, /1\.\.255 ms/],
    [{ endpoints: [{ direction: 'in', type: 'interrupt', intervalMs: 256 }] }, /intervalMs/],
    [{ endpoints: Array.from({ length: 16 }, () => ({ direction: 'in' })) }, /at most 15/],
    [{ endpoints: 'ep1' }, /endpoints must be an array/],
  ];
  for (const [spec, msg] of bad) {
    t.throws(() => wire.encodeFfsDescriptors(spec as never), { code: 'ERR_INVALID_ARGUMENT', message: msg }, JSON.stringify(spec));
  }
});

t.test('descriptors a bulk endpoint cannot have, or an unusable name, are refused', async (t) => {
  const bad: [object, RegExp][] = [
    [{ highSpeedMaxPacket: 1024 }, /512 at high speed/],
    [{ highSpeedMaxPacket: 64 }, /512 at high speed/],
    [{ fullSpeedMaxPacket: 100 }, /8\/16\/32\/64 at full speed/],
    [{ fullSpeedMaxPacket: 512 }, /full speed/],
    [{ name: '' }, /1\.\.126 characters/],
    [{ name: 'x'.repeat(127) }, /1\.\.126 characters/],
    [{ name: 'Multiplexor\n' }, /printable ASCII/],
    [{ name: 'Multiplexör' }, /printable ASCII/],
  ];
  for (const [spec, msg] of bad) {
    t.throws(() => wire.encodeFfsDescriptors(spec), { name: 'NativeError', code: 'ERR_INVALID_ARGUMENT', message: msg }, JSON.stringify(spec));
  }
  t.doesNotThrow(() => wire.encodeFfsDescriptors({ name: 'x'.repeat(126) }), '126 characters fit a string descriptor');
});

t.test('attachDeviceRoleFfs refuses a missing or non-FunctionFS directory with ERR_SYSTEM', async (t) => {
  const engine = new MuxEngine();
  t.teardown(() => engine.close());
  const dir = tempDir(t);
  t.throws(() => engine.attachDeviceRoleFfs(join(dir, 'nowhere')), { code: 'ERR_SYSTEM', message: /open .*nowhere\/ep0/ });

  // Files named like a function's, on an ordinary filesystem: nothing may be
  // written into them, and nothing may reach the event loop.
  const fake = join(dir, 'fake');
  mkdirSync(fake);
  for (const f of ['ep0', 'ep1', 'ep2']) writeFileSync(join(fake, f), '');
  t.throws(() => engine.attachDeviceRoleFfs(fake), { code: 'ERR_SYSTEM', message: /is not a FunctionFS mount/ });
  t.equal(readFileSync(join(fake, 'ep0')).length, 0, 'no descriptors were written to a plain file');
  t.throws(() => engine.attachDeviceRoleFfs(''), { code: 'ERR_SYSTEM', message: /open \/ep0|empty/ });
  t.throws(() => engine.attachFfsPlaceholder(join(dir, 'nowhere'), PHONE_FFS_INTERFACES.ptp), { code: 'ERR_SYSTEM', message: /nowhere\/ep0/ });
  t.throws(() => engine.attachFfsPlaceholder(fake, PHONE_FFS_INTERFACES.ptp), { code: 'ERR_SYSTEM', message: /not a FunctionFS mount/ });
  t.throws(() => engine.attachFfsPlaceholder(fake, { highSpeedMaxPacket: 64 }), { code: 'ERR_SYSTEM', message: /512 at high speed/ });
  t.equal(engine.stats().devicesActive, 0);
});

t.test('startPeer takes exactly one of cable and ffs, and cleans up when FunctionFS is refused', async (t) => {
  await t.rejects(startPeer({}), TypeError);
  await t.rejects(startPeer({ cable: '/tmp/x', ffs: '/dev/ffs-mux' }), TypeError);
  const dir = tempDir(t);
  const err = await startPeer({ ffs: join(dir, 'nothing'), socketDir: dir }).catch((e: unknown) => e);
  t.ok(err instanceof NativeError, 'a NativeError');
  t.equal((err as NativeError).code, 'ERR_SYSTEM');
});

t.test('raw mode (the lab benchmark\'s measuring device) is FunctionFS only; a bad mount is still refused', async (t) => {
  await t.rejects(startPeer({ cable: '/tmp/x', raw: true }), { name: 'TypeError', message: /FunctionFS mount only/ });
  await t.rejects(runSimCommand(['--cable', '/tmp/x', '--raw']), /--raw needs --ffs/);
  const engine = new MuxEngine();
  t.teardown(() => engine.close());
  const dir = tempDir(t);
  // The raw device lives in the testing addon (src/native/testing.ts).
  t.throws(() => new (nativeTesting().RawBulkDevice)(join(dir, 'nowhere'), () => {}), { code: 'ERR_SYSTEM', message: /nowhere\/ep0/ });
  t.equal(engine.stats().devicesActive, 0);
});
