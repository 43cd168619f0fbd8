// The daemon's preflight against the simulated phone in each trust mode:
// auto pairs at once; prompt lists the phone while the dialog shows, keeps
// asking, and pairs when the user taps Trust (3 s later), after which the
// phone re-enumerates with a new DeviceID and the record is kept; deny lists
// it unpaired; a restart with the record takes the session path.
import t from 'tap';

import { UsbmuxClient, type UsbmuxEvent } from '../src/client/index.js';
import { findOnPath, run } from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { SLOW, startDaemon, tempDir, visibleDevices, waitUntil } from './helpers/usbmuxd-harness.js';
import { join } from 'node:path';

async function collect(address: string): Promise<{ events: UsbmuxEvent[]; stop: () => void }> {
  const listener = await new UsbmuxClient({ address }).listen();
  const events: UsbmuxEvent[] = [];
  void (async () => {
    for await (const ev of listener) events.push(ev);
  })().catch(() => undefined);
  return { events, stop: () => listener.close() };
}

t.test('auto: paired before it is listed; Paired broadcast; Debian tools use the record', async (t) => {
  const started = Date.now();
  const setup = await startDaemon(t, { sims: 1, preflight: true });
  const visibleMs = Date.now() - started;
  const [device] = await visibleDevices(setup.address, 1);
  const udid = device!.serialNumber;
  t.comment(`daemon start to phone listed (auto trust, preflight paired it): ${visibleMs} ms`);
  const record = await setup.daemon.store.readRecord(udid);
  t.match(record, { HostID: String, SystemBUID: await setup.daemon.store.systemBUID() }, 'the record is on disk');
  t.ok(record.EscrowBag instanceof Uint8Array && record.HostPrivateKey instanceof Uint8Array, 'with EscrowBag and the host key');
  t.equal(setup.peers[0]!.lockdownd.pairRecords.size, 1, 'and the phone knows the host');
  const info = findOnPath('ideviceinfo');
  if (!info) return t.pass('ideviceinfo -k SerialNumber', { skip: requireTool('ideviceinfo', 'libimobiledevice-utils') });
  const r = await run(info, ['-u', udid, '-k', 'SerialNumber'], { env: { ...process.env, USBMUXD_SOCKET_ADDRESS: setup.address }, timeoutMs: SLOW });
  t.match(r.stdout, /^[0-9A-Z]{10}\n$/, `ideviceinfo -k SerialNumber (needs the session): ${JSON.stringify(r.stdout)}`);
});

t.test('prompt: listed while the dialog shows, paired 3 s later after Trust, new DeviceID, record kept', async (t) => {
  const cable = join(tempDir(t), 'phones');
  const setup = await startDaemon(t, { sims: 0, cables: [cable], preflight: true, preflightRetryMs: 500 });
  const watch = await collect(setup.address);
  t.teardown(() => watch.stop());
  const { startPeer } = await import('../src/sim/peer.js');
  const t0 = Date.now();
  const peer = await startPeer({ cable, trust: 'prompt' });
  t.teardown(() => peer.close());
  const [first] = await visibleDevices(setup.address, 1);
  const listedMs = Date.now() - t0;
  t.comment(`plug to listed, waiting for trust: ${listedMs} ms`);
  await waitUntil(() => peer.lockdownd.trustDialog === 'pending', 'the trust dialog');
  t.equal(peer.lockdownd.pairRecords.size, 0, 'not paired yet');
  await new Promise((r) => setTimeout(r, 3000));
  t.equal(peer.lockdownd.trustDialog, 'pending', 'still pending after 3 s: the daemon did not give up');
  const tapped = Date.now();
  peer.trust();
  const paired = await waitUntil(() => watch.events.find((e) => e.type === 'paired'), 'the Paired broadcast');
  const pairMs = Date.now() - tapped;
  t.comment(`Trust tap to Paired broadcast: ${pairMs} ms`);
  t.ok(paired, 'Paired is broadcast');
  const again = await waitUntil(async () => {
    const l = await new UsbmuxClient({ address: setup.address }).listDevices();
    return l.length === 1 && l[0]!.deviceId !== first!.deviceId ? l[0] : null;
  }, 'the phone back after re-enumerating');
  t.not(again.deviceId, first!.deviceId, `re-enumerated: DeviceID ${first!.deviceId} -> ${again.deviceId}`);
  t.equal(again.serialNumber, first!.serialNumber, 'same UDID');
  const record = await setup.daemon.store.readRecord(first!.serialNumber);
  t.ok(peer.lockdownd.pairRecords.has(record.HostID as string), 'the record is kept and the phone knows its HostID');
  t.ok(watch.events.some((e) => e.type === 'detached') && watch.events.filter((e) => e.type === 'attached').length >= 2, 'listeners saw detach and attach');
});

t.test('deny: listed, unpaired; a restart with a stored record takes the session path', async (t) => {
  const dir = tempDir(t);
  const cable = join(dir, 'phones');
  const configDir = join(dir, 'lockdown');
  const { startPeer } = await import('../src/sim/peer.js');
  const a = await startDaemon(t, { sims: 0, cables: [cable], preflight: true, configDir });
  const denier = await startPeer({ cable, trust: 'deny', stateDir: join(dir, 'denier') });
  t.teardown(() => denier.close());
  const [d] = await visibleDevices(a.address, 1);
  await waitUntil(async () => (await a.daemon.preflight!.result(a.daemon.devices.byId(d!.deviceId)!)) ?? 'done', 'the preflight');
  await t.rejects(a.daemon.store.readRecord(d!.serialNumber), 'no record after a denial');
  t.equal(denier.lockdownd.pairRecords.size, 0);
  await denier.close();

  const phone = await startPeer({ cable, trust: 'auto', stateDir: join(dir, 'phone') });
  t.teardown(() => phone.close());
  const [p] = await waitUntil(async () => {
    const l = await new UsbmuxClient({ address: a.address }).listDevices();
    return l.length === 1 && l[0]!.serialNumber === phone.identity.udid ? l : null;
  }, 'the auto phone');
  await waitUntil(async () => a.daemon.store.readRecord(p!.serialNumber).catch(() => null), 'its record');
  await a.daemon.stop();

  // Same config dir, same phone (its state dir keeps our HostID).
  const b = await startDaemon(t, { sims: 0, cables: [cable], preflight: true, configDir });
  phone.plug();
  const dialogBefore = phone.lockdownd.trustDialog;
  const [back] = await visibleDevices(b.address, 1, 30_000);
  t.equal(back!.serialNumber, p!.serialNumber, 'the phone is back on the new daemon');
  const result = await b.daemon.preflight!.result(b.daemon.devices.byId(back!.deviceId)!);
  t.ok(result === undefined || result === 'paired', `preflight: ${result ?? 'done'}`);
  t.equal(phone.lockdownd.pairRecords.size, 1, 'no second pairing: the stored record opened a session');
  t.equal(phone.lockdownd.trustDialog, dialogBefore, 'and no dialog');
});
