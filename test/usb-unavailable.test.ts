// A daemon with USB enabled on a machine without USB (no /dev/bus/usb, as
// here and in CI): one warning, and cable and simulated phones are served as
// ever. Where the machine does have USB the warning checks are skipped.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { MuxEngine } from '../src/native/mux-engine.js';
import { Logger } from '../src/util/log.js';
import { assertBuilt, spawnDaemon, tempDir as procDir } from './helpers/daemon-process.js';
import { startDaemon, tempDir, visibleDevices } from './helpers/usbmuxd-harness.js';

const usbAbsent = (() => {
  const engine = new MuxEngine();
  try {
    engine.startUsb();
    return false;
  } catch {
    return true;
  } finally {
    engine.close();
  }
})();

const USB_WARNING = /\[warning\] USB is unavailable \(libusb_init failed: LIBUSB_ERROR_\w+ [^)]*\)\); serving virtual-cable and simulated devices only/;

t.test('in process: one warning, the simulated phone is served', async (t) => {
  const logFile = join(tempDir(t), 'daemon.log');
  const setup = await startDaemon(t, { sims: 1, usb: 'hotplug', log: new Logger({ verbosity: 7, file: logFile }) });
  const [phone] = await visibleDevices(setup.address, 1);
  t.ok(phone, 'ListDevices shows the simulated phone');
  // A real connection through the data plane, to its echo service.
  const socket = await new UsbmuxClient({ address: setup.address }).connect(phone.deviceId, 7);
  socket.write('ping');
  const echo = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
  t.equal(echo.toString(), 'ping', 'a connection to the phone works');
  socket.destroy();
  const warnings = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('[warning]'));
  if (!usbAbsent) {
    t.same(warnings.filter((l) => /USB/.test(l)), [], 'this machine has USB: no USB warning');
    return;
  }
  t.equal(warnings.length, 1, `exactly one warning: ${JSON.stringify(warnings)}`);
  t.match(warnings[0], USB_WARNING);
  t.same([...setup.daemon.usbHandles()], [], 'no USB device was handed to the engine');
  t.doesNotThrow(() => setup.daemon.discover(), 'discover() (SIGUSR2) without USB is a no-op');
});

t.test('the command: USB on by default, one warning on stderr, --no-usb none', async (t) => {
  assertBuilt();
  for (const noUsb of [false, true]) {
    const dir = procDir(t, 'tsmuxd-nousb-');
    const args = ['-f', '--sim', '1', '-S', join(dir, 'sock'), '-P', join(dir, 'pid'), '-C', join(dir, 'lockdown')];
    const d = spawnDaemon(t, noUsb ? ['--no-usb', ...args] : args);
    await d.ready();
    await d.stderr.waitFor(/device 1 attached/, 20_000, d.exited);
    const address = `UNIX:${join(dir, 'sock')}`;
    const list = await new UsbmuxClient({ address }).listDevices();
    t.equal(list.length, 1, `${noUsb ? '--no-usb' : 'default'}: the simulated phone is listed`);
    t.same(await d.stop(), { code: 0, signal: null }, 'and the daemon stops cleanly');
    const usbWarnings = d.stderr.lines().filter((l) => /\[warning\].*USB/.test(l));
    if (noUsb) {
      t.same(usbWarnings, [], '--no-usb: no USB warning');
      t.notOk(d.stderr.lines().some((l) => /libusb/.test(l)), '--no-usb: libusb is never mentioned');
    } else if (usbAbsent) {
      t.equal(usbWarnings.length, 1, `default: one USB warning: ${JSON.stringify(usbWarnings)}`);
      t.match(usbWarnings[0], USB_WARNING);
      t.equal(d.stderr.lines().filter((l) => /\[(warning|error|fatal)\]/.test(l)).length, 1, 'and nothing else is a warning or an error');
    }
  }
});
