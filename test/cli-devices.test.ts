// `tsmuxd devices` as users run it (the built CLI, a child process) against
// a daemon with simulated phones: the list in text and JSON, and --watch
// streaming attach, pair, detach and re-attach as JSON lines.
import t from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { assertBuilt, runCli, spawnDaemon } from './helpers/daemon-process.js';
import { SLOW, startDaemon, tempDir, waitUntil } from './helpers/usbmuxd-harness.js';

assertBuilt();

const PAIR_RECORD = Buffer.from(
  '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n\t<key>HostID</key>\n\t<string>TAP-HOST</string>\n</dict>\n</plist>\n',
);

t.test('devices lists the phones in text and JSON', async (t) => {
  const setup = await startDaemon(t, { sims: 2 });
  const phones = setup.daemon.devices.visible();

  const json = await runCli(['devices', '--json', '--socket', setup.address]);
  t.equal(json.code, 0, json.stderr);
  const list = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
  t.equal(list.length, 2, 'both phones');
  t.same(
    list.map((d) => [d.deviceId, d.udid]),
    phones.map((p) => [p.deviceId, p.serialNumber]),
    'DeviceID and UDID of each, in DeviceID order',
  );
  t.match(list[0], { connectionType: 'USB', productId: 0x12a8, locationId: phones[0].locationId, connectionSpeed: 480_000_000 });

  const text = await runCli(['devices'], { env: { ...process.env, USBMUXD_SOCKET_ADDRESS: setup.address } });
  t.equal(text.code, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n');
  t.match(lines[0], /^DeviceID\s+UDID\s+Type\s+ProductID\s+Location$/, 'a header');
  t.equal(lines.length, 3, 'a line per phone');
  t.match(lines[1], new RegExp(`^\\s*${phones[0].deviceId}\\s+${phones[0].serialNumber}\\s+USB\\s+0x12a8\\s+0x[0-9a-f]{8}$`));
});

t.test('devices with none attached, and with no daemon', async (t) => {
  const setup = await startDaemon(t, { sims: 0 });
  const json = await runCli(['devices', '--json', '--socket', setup.address]);
  t.equal(json.code, 0, json.stderr);
  t.same(JSON.parse(json.stdout), []);
  const text = await runCli(['devices', '--socket', setup.address]);
  t.equal(text.stdout, 'no devices\n');

  const gone = await runCli(['devices', '--socket', `UNIX:${tempDir(t)}/nothing.sock`]);
  t.equal(gone.code, 1, 'exit 1 when the daemon is not there');
  t.match(gone.stderr, /^tsmuxd devices: cannot reach the daemon/);

  const bad = await runCli(['devices', '--bogus']);
  t.equal(bad.code, 2, 'exit 2 for a bad option');
  t.match(bad.stderr, /Unknown option '--bogus'/);
});

t.test('devices --watch streams attach, pair, detach and re-attach', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const [peer] = setup.peers;
  const phone = setup.daemon.devices.visible()[0];
  const watch = spawnDaemon(t, ['devices', '--watch', '--json', '--socket', setup.address]);
  const events = () =>
    watch.stdout.lines().map((l) => JSON.parse(l) as { event: string; deviceId: number; udid?: string; time: string });

  await watch.stdout.waitFor(/"event":"attached"/, SLOW, watch.exited);
  t.match(events()[0], { event: 'attached', deviceId: phone.deviceId, udid: phone.serialNumber, connectionType: 'USB', productId: 0x12a8 });
  t.ok(!Number.isNaN(Date.parse(events()[0].time)), 'each line has a time');

  await new UsbmuxClient({ address: setup.address }).savePairRecord(phone.serialNumber, PAIR_RECORD, phone.deviceId);
  await watch.stdout.waitFor(/"event":"paired"/, SLOW, watch.exited);

  peer.unplug();
  await watch.stdout.waitFor(/"event":"detached"/, SLOW, watch.exited);
  peer.plug();
  await waitUntil(() => events().filter((e) => e.event === 'attached').length === 2, 'the phone to attach again');

  t.same(
    events().map((e) => [e.event, e.deviceId, e.udid]),
    [
      ['attached', phone.deviceId, phone.serialNumber],
      ['paired', phone.deviceId, phone.serialNumber],
      ['detached', phone.deviceId, phone.serialNumber],
      ['attached', phone.deviceId + 1, phone.serialNumber],
    ],
    'one line per event; detach and pair name the UDID; a re-attached phone gets a new DeviceID',
  );
  const exit = await watch.stop();
  t.equal(exit.code, 0, 'SIGTERM ends the watch cleanly');
  t.equal(watch.stderr.text, '', 'nothing on stderr');
});

t.test('devices --watch in text, and when the daemon goes away', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const phone = setup.daemon.devices.visible()[0];
  const watch = spawnDaemon(t, ['devices', '-w', '--socket', setup.address]);
  const m = await watch.stdout.waitFor(/^(\S+) attached (\d+) (\S+) USB product 0x12a8 location (0x[0-9a-f]{8})$/m, SLOW, watch.exited);
  t.equal(Number(m[2]), phone.deviceId);
  t.equal(m[3], phone.serialNumber);
  await setup.daemon.stop();
  const exit = await watch.waitExit(SLOW);
  t.equal(exit.code, 1, 'exit 1 when the daemon closes the Listen connection');
  t.match(watch.stderr.text, /lost the daemon/);
});
