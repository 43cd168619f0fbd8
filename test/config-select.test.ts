// Device policy (src/native/config-select.ts): which devices are Apple usbmux
// devices, which configuration and endpoints to use, and serial -> UDID.
import t from 'tap';

import type { CableDescriptor, ConfigurationDescriptor, EndpointDescriptor, InterfaceDescriptor } from '../src/native/addon.js';
import { iphoneDescriptor } from '../src/sim/descriptor.js';
import {
  APPLE_VENDOR_ID,
  checkDevice,
  isAppleMuxProduct,
  isMuxInterface,
  selectMuxConfiguration,
  serialToUdid,
} from '../src/native/config-select.js';

const bulk = (address: number, maxPacketSize = 512): EndpointDescriptor => ({ address, attributes: 0x02, maxPacketSize });
const intr = (address: number): EndpointDescriptor => ({ address, attributes: 0x03, maxPacketSize: 64 });

function iface(number: number, cls: number, sub: number, proto: number, endpoints: EndpointDescriptor[]): InterfaceDescriptor {
  return { number, interfaceClass: cls, subclass: sub, protocol: proto, endpoints };
}

const ptp = iface(0, 6, 1, 1, [bulk(0x81), bulk(0x02), intr(0x83)]);
const mux = (number = 1, endpoints = [bulk(0x04), bulk(0x85)]) => iface(number, 0xff, 0xfe, 0x02, endpoints);

function device(configurations: ConfigurationDescriptor[], activeConfiguration = 0, productId = 0x12a8): CableDescriptor {
  return { vendorId: APPLE_VENDOR_ID, productId, serial: '00008101000A1B2C3D4E5F60', activeConfiguration, configurations };
}

t.test('the mux interface needs all three of class ff, subclass fe, protocol 02', async (t) => {
  t.ok(isMuxInterface(mux()), 'ff/fe/02 matches');
  const singles: Array<[string, InterfaceDescriptor]> = [
    ['class 0xfe', iface(1, 0xfe, 0xfe, 0x02, [bulk(0x04), bulk(0x85)])],
    ['subclass 0xfd', iface(1, 0xff, 0xfd, 0x02, [bulk(0x04), bulk(0x85)])],
    ['protocol 0x01', iface(1, 0xff, 0xfe, 0x01, [bulk(0x04), bulk(0x85)])],
  ];
  for (const [what, i] of singles) {
    t.notOk(isMuxInterface(i), `${what} alone is not the mux interface`);
    const d = device([{ value: 1, interfaces: [ptp, i] }]);
    t.equal(selectMuxConfiguration(d), null, `a device whose only candidate has ${what} has no mux selection`);
    const check = checkDevice(d);
    t.equal(check.ok, false, `${what}: checkDevice rejects it`);
  }
  // usbmuxd's `||` bug would take any of these; the strict rule takes none.
  t.notOk(isMuxInterface(iface(0, 0xff, 0x00, 0x00, [bulk(0x04), bulk(0x85)])), 'vendor class ff alone is not enough');
  t.notOk(isMuxInterface(iface(0, 0x06, 0xfe, 0x00, [bulk(0x04), bulk(0x85)])), 'subclass fe alone is not enough');
  t.notOk(isMuxInterface(iface(0, 0x06, 0x01, 0x02, [bulk(0x04), bulk(0x85)])), 'protocol 02 alone is not enough');
  // The real iPhone's interface 2 in configuration 4 is ff/fd/01: never chosen.
  const valeriaOnly = device([{ value: 4, interfaces: [ptp, iface(2, 0xff, 0xfd, 0x01, [bulk(0x86), bulk(0x07)])] }]);
  t.equal(selectMuxConfiguration(valeriaOnly), null, 'ff/fd/01 is not the mux');
});

t.test('configuration choice', async (t) => {
  const iphone = (active: number) => iphoneDescriptor({ serial: 'X', activeConfiguration: active });

  const unconfigured = selectMuxConfiguration(iphone(0));
  t.same(
    unconfigured,
    { configuration: 4, interfaceNumber: 1, endpointIn: 0x85, endpointOut: 0x04, maxPacketSize: 512, needsSetConfiguration: true },
    'unconfigured: the highest configuration with the mux (4), which must be set',
  );

  const active3 = selectMuxConfiguration(iphone(3));
  t.equal(active3?.configuration, 3, 'active configuration 3 has the mux: it is kept');
  t.equal(active3?.needsSetConfiguration, false, 'and no SET_CONFIGURATION is needed');

  const active4 = selectMuxConfiguration(iphone(4));
  t.equal(active4?.configuration, 4);
  t.equal(active4?.needsSetConfiguration, false);

  const active1 = selectMuxConfiguration(iphone(1));
  t.equal(active1?.configuration, 4, 'active configuration 1 (PTP only): switch to the highest with the mux');
  t.equal(active1?.needsSetConfiguration, true);

  const activeMissing = selectMuxConfiguration(iphone(9));
  t.equal(activeMissing?.configuration, 4, 'an active value that is not described counts as no mux');
  t.equal(activeMissing?.needsSetConfiguration, true);

  // Listed out of order; the highest value with the mux wins, not the last or first listed.
  const shuffled = device([
    { value: 3, interfaces: [ptp, mux(1)] },
    { value: 5, interfaces: [ptp] },
    { value: 1, interfaces: [ptp] },
    { value: 4, interfaces: [ptp, mux(2, [bulk(0x06), bulk(0x87)])] },
    { value: 2, interfaces: [mux(0)] },
  ]);
  const sel = selectMuxConfiguration(shuffled);
  t.equal(sel?.configuration, 4, 'highest configuration value that has the mux, whatever the listing order');
  t.equal(sel?.interfaceNumber, 2);
  t.equal(sel?.endpointOut, 0x06);
  t.equal(sel?.endpointIn, 0x87);

  // A higher configuration whose mux-class interface is unusable is skipped.
  const broken5 = device([
    { value: 3, interfaces: [ptp, mux(1)] },
    { value: 5, interfaces: [mux(1, [bulk(0x04), bulk(0x05)])] },
  ]);
  t.equal(selectMuxConfiguration(broken5)?.configuration, 3, 'a configuration whose mux has no IN endpoint is skipped');

  // First usable mux interface in a configuration wins.
  const two = device([{ value: 1, interfaces: [mux(3, [bulk(0x01)]), mux(4, [bulk(0x02), bulk(0x83)]), mux(5, [bulk(0x09), bulk(0x8a)])] }]);
  t.equal(selectMuxConfiguration(two)?.interfaceNumber, 4, 'the first interface that qualifies');

  t.equal(selectMuxConfiguration(device([{ value: 1, interfaces: [ptp] }])), null, 'no mux anywhere: null');
  t.equal(selectMuxConfiguration(device([])), null, 'no configurations: null');
});

t.test('endpoints: either order, bulk only, exactly two', async (t) => {
  const sel = (endpoints: EndpointDescriptor[]) => selectMuxConfiguration(device([{ value: 1, interfaces: [mux(1, endpoints)] }]));
  const outIn = sel([bulk(0x04), bulk(0x85)]);
  t.same([outIn?.endpointOut, outIn?.endpointIn], [0x04, 0x85], 'OUT then IN');
  const inOut = sel([bulk(0x85), bulk(0x04)]);
  t.same([inOut?.endpointOut, inOut?.endpointIn], [0x04, 0x85], 'IN then OUT (swapped endpoints)');

  t.equal(sel([bulk(0x04), intr(0x85)]), null, 'an interrupt IN endpoint is rejected');
  t.equal(sel([{ address: 0x04, attributes: 0x01, maxPacketSize: 512 }, bulk(0x85)]), null, 'an isochronous OUT endpoint is rejected');
  t.equal(sel([bulk(0x04), bulk(0x05)]), null, 'two OUT endpoints are rejected');
  t.equal(sel([bulk(0x84), bulk(0x85)]), null, 'two IN endpoints are rejected');
  t.equal(sel([bulk(0x04)]), null, 'one endpoint is rejected');
  t.equal(sel([bulk(0x04), bulk(0x85), bulk(0x06)]), null, 'three endpoints are rejected');
  t.equal(sel([bulk(0x04), bulk(0x85), intr(0x83)]), null, 'two bulk plus an interrupt endpoint is rejected');
  t.equal(sel([]), null, 'no endpoints');

  t.equal(sel([bulk(0x04, 1024), bulk(0x85, 1024)])?.maxPacketSize, 1024, 'wMaxPacketSize from the OUT endpoint (SuperSpeed)');
  t.equal(sel([bulk(0x85, 1024), bulk(0x04, 512)])?.maxPacketSize, 512, 'the OUT endpoint decides, not the IN one');
  t.equal(sel([bulk(0x04, 0), bulk(0x85, 512)])?.maxPacketSize, 64, 'a zero wMaxPacketSize falls back to 64');
});

t.test('vendor and product checks', async (t) => {
  const withIds = (vendorId: number, productId: number): CableDescriptor => ({
    ...iphoneDescriptor({ serial: 'S' }),
    vendorId,
    productId,
  });
  const accepted = [0x1290, 0x1291, 0x12a8, 0x12ab, 0x12af, 0x8600, 0x1901, 0x1903, 0x1905];
  const refused = [0x128f, 0x12b0, 0x12ff, 0x8601, 0x85ff, 0x1900, 0x1906, 0x0000, 0xffff, 0x1281];
  for (const pid of accepted) {
    t.ok(isAppleMuxProduct(pid), `0x${pid.toString(16)} is an Apple mux product`);
    t.equal(checkDevice(withIds(0x05ac, pid)).ok, true, `05ac:${pid.toString(16)} accepted`);
  }
  for (const pid of refused) {
    t.notOk(isAppleMuxProduct(pid), `0x${pid.toString(16)} is not`);
    const c = checkDevice(withIds(0x05ac, pid));
    t.equal(c.ok, false, `05ac:${pid.toString(16)} rejected`);
    if (!c.ok) t.match(c.reason, /product/, 'the reason names the product');
  }
  for (const vid of [0x1234, 0x05ad, 0x0000]) {
    const c = checkDevice(withIds(vid, 0x12a8));
    t.equal(c.ok, false, `vendor 0x${vid.toString(16)} with an iPhone product id is rejected`);
    if (!c.ok) t.match(c.reason, /vendor/, 'the reason names the vendor');
  }
  const noMux = checkDevice({ ...withIds(0x05ac, 0x12a8), configurations: [{ value: 1, interfaces: [ptp] }] });
  t.equal(noMux.ok, false, 'an Apple product without the mux interface is rejected');
  if (!noMux.ok) t.match(noMux.reason, /usbmux/);
  const ok = checkDevice(withIds(0x05ac, 0x12a8));
  t.equal(ok.ok && ok.selection.configuration, 4, 'an accepted device carries its selection');
});

t.test('serialToUdid', async (t) => {
  t.equal(serialToUdid('000081200006696026A2201E'), '00008120-0006696026A2201E', '24 chars: a dash after 8');
  t.equal(serialToUdid('00008101000A1B2C3D4E5F60'), '00008101-000A1B2C3D4E5F60');
  const old = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
  t.equal(old.length, 40);
  t.equal(serialToUdid(old), old, '40 hex chars: unchanged');
  t.equal(serialToUdid('00008101000A1B2C3D4E5F6'), '00008101000A1B2C3D4E5F6', '23 chars: unchanged');
  t.equal(serialToUdid('00008101000A1B2C3D4E5F601'), '00008101000A1B2C3D4E5F601', '25 chars: unchanged');
  t.equal(serialToUdid(''), '');
});
