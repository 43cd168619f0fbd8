// Matching and configuration choice for devices as the npm `usb` package
// reports them (src/usb/usb-descriptor.ts feeding src/native/config-select.ts).
import t from 'tap';

import { checkDevice } from '../src/native/config-select.js';
import { describeUsbDevice, isAppleCandidate, openRequest, usbDeviceKey } from '../src/usb/usb-descriptor.js';
import { alt, config, deviceDescriptor, endpoint, fixture, iphone, labGadget } from './helpers/usb-fixtures.js';

t.test('an unconfigured iPhone (Debian udev rule): configuration 4 is chosen and must be set', async (t) => {
  const dev = iphone({ bus: 3, address: 13, active: 0 });
  const d = describeUsbDevice(dev);
  t.equal(d.activeConfiguration, 0, 'configDescriptor undefined reads as unconfigured');
  t.same(d.configurations.map((c) => c.value), [1, 2, 3, 4]);
  t.equal(d.serial, '', 'the serial is left to the data plane, which reads it after opening');
  const check = checkDevice(d);
  t.ok(check.ok);
  if (!check.ok) return;
  t.same(check.selection, { configuration: 4, interfaceNumber: 1, endpointIn: 0x85, endpointOut: 0x04, maxPacketSize: 512, needsSetConfiguration: true });
  t.same(openRequest(dev, check.selection), {
    busNumber: 3,
    deviceAddress: 13,
    vendorId: 0x05ac,
    productId: 0x12a8,
    configuration: 4,
    interfaceNumber: 1,
    endpointIn: 0x85,
    endpointOut: 0x04,
    maxPacketSize: 512,
  });
  t.equal(usbDeviceKey(dev), '3-13');
});

t.test('an iPhone already in configuration 3 keeps it; in configuration 1 it moves to 4', async (t) => {
  const three = checkDevice(describeUsbDevice(iphone({ active: 3 })));
  t.ok(three.ok && three.selection.configuration === 3 && !three.selection.needsSetConfiguration, 'active 3 has the mux: kept');
  const one = checkDevice(describeUsbDevice(iphone({ active: 1 })));
  t.ok(one.ok && one.selection.configuration === 4 && one.selection.needsSetConfiguration, 'active 1 (PTP only): switch to 4');
});

t.test('the lab gadget: one configuration, IN listed before OUT', async (t) => {
  const check = checkDevice(describeUsbDevice(labGadget({ active: 0 })));
  t.ok(check.ok);
  if (check.ok) t.same([check.selection.configuration, check.selection.interfaceNumber, check.selection.endpointIn, check.selection.endpointOut], [1, 0, 0x81, 0x02]);
});

t.test('strict matching on the usb package shape', async (t) => {
  t.notOk(isAppleCandidate(fixture(deviceDescriptor(0x1234, 0x12a8, 1), [])), 'another vendor with an iPhone PID');
  t.notOk(isAppleCandidate(fixture(deviceDescriptor(0x05ac, 0x8286, 1), [])), 'an Apple keyboard-range PID');
  t.ok(isAppleCandidate(iphone()), 'an iPhone');
  t.ok(isAppleCandidate(iphone({}, 0x8600)), 'a T2');
  t.ok(isAppleCandidate(iphone({}, 0x1905)), 'Apple-silicon restore');

  const only = (iface: ReturnType<typeof alt>) => checkDevice(describeUsbDevice(fixture(deviceDescriptor(0x05ac, 0x12a8, 1), [config(1, [[iface]])])));
  const eps = [endpoint(0x04), endpoint(0x85)];
  t.ok(only(alt(0, 0xff, 0xfe, 0x02, eps)).ok, 'ff/fe/02');
  for (const [cls, sub, proto] of [[0xff, 0xfe, 0x01], [0xff, 0xfd, 0x02], [0xfe, 0xfe, 0x02], [0xff, 0x00, 0x00], [0x06, 0xfe, 0x02]]) {
    t.notOk(only(alt(0, cls, sub, proto, eps)).ok, `${cls.toString(16)}/${sub.toString(16)}/${proto.toString(16)} is not the mux (all three must match)`);
  }
  t.notOk(only(alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04), endpoint(0x85, 0x03)])).ok, 'an interrupt IN endpoint');
  t.notOk(only(alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04, 0x02, 2048), endpoint(0x85)])).ok, 'wMaxPacketSize 2048 on a bulk endpoint');
  t.notOk(only(alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04, 0x02, 4), endpoint(0x85)])).ok, 'wMaxPacketSize 4');
  t.notOk(only(alt(0, 0xff, 0xfe, 0x02, [endpoint(0x00), endpoint(0x85)])).ok, 'endpoint 0 is not a bulk OUT endpoint');
  t.notOk(only(alt(0, 0xff, 0xfe, 0x02, [endpoint(0x14), endpoint(0x85)])).ok, 'reserved address bits');
  const zero = only(alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04, 0x02, 0), endpoint(0x85)]));
  t.ok(zero.ok && zero.selection.maxPacketSize === 64, 'wMaxPacketSize 0 falls back to 64, as usbmuxd');
  const ss = only(alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04, 0x02, 1024), endpoint(0x85, 0x02, 1024)]));
  t.ok(ss.ok && ss.selection.maxPacketSize === 1024, 'SuperSpeed 1024');
});

t.test('alternate settings: alternate 0 is the one judged', async (t) => {
  const alternates = [alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04)], 1), alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04), endpoint(0x85)], 0)];
  const check = checkDevice(describeUsbDevice(fixture(deviceDescriptor(0x05ac, 0x12a8, 1), [config(1, [alternates])])));
  t.ok(check.ok, 'alternate 0 listed second is still the one used');
  const badZero = [alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04)], 0), alt(0, 0xff, 0xfe, 0x02, [endpoint(0x04), endpoint(0x85)], 1)];
  t.notOk(checkDevice(describeUsbDevice(fixture(deviceDescriptor(0x05ac, 0x12a8, 1), [config(1, [badZero])]))).ok, 'a usable alternate 1 does not rescue a broken alternate 0');
  t.notOk(checkDevice(describeUsbDevice(fixture(deviceDescriptor(0x05ac, 0x12a8, 1), [config(1, [[]])]))).ok, 'an interface with no alternates is skipped');
});

t.test('descriptors the usb package fails to read count as none', async (t) => {
  const broken = {
    busNumber: 1,
    deviceAddress: 9,
    deviceDescriptor: deviceDescriptor(0x05ac, 0x12a8, 4),
    get allConfigDescriptors(): never {
      throw new Error('LIBUSB_ERROR_IO');
    },
    get configDescriptor(): never {
      throw new Error('LIBUSB_ERROR_IO');
    },
  };
  const d = describeUsbDevice(broken);
  t.equal(d.activeConfiguration, 0);
  t.same(d.configurations, []);
  const check = checkDevice(d);
  t.notOk(check.ok, 'and the device is not used');
});
