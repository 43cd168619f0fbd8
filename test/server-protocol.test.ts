// The usbmuxd client protocol through the project's own client library, in
// both protocol versions (0 = binary, 1 = plist): device lists, Listen,
// Connect and its result codes, ReadBUID, pair records, Paired broadcasts and
// ListListeners. Raw-byte checks live in server-protocol-wire.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import creator from 'bplist-creator';
import * as plist from 'plist';
import t from 'tap';

import { UsbmuxError } from '../src/client/channel.js';
import { UsbmuxClient, type UsbmuxEvent } from '../src/client/usbmux-client.js';
import { silentLogger } from '../src/util/log.js';
import { Daemon } from '../src/daemon/daemon.js';
import { startPeer } from '../src/sim/peer.js';
import { ECHO_PORT } from '../src/protocol/sim-ports.js';
import { readExactly } from './helpers/harness.js';
import { SLOW, startDaemon, tempDir, visibleDevices, waitUntil, within } from './helpers/usbmuxd-harness.js';

const UUID_UPPER = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;

/** A UsbmuxError's result number, or undefined if `p` did not fail that way. */
async function failure(p: Promise<unknown>): Promise<{ result?: number; code?: string; message: string } | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (err instanceof UsbmuxError) return { result: err.result, code: err.code, message: err.message };
    return { message: (err as Error).message };
  }
}

/** Takes events from a listener until `n` arrived or `timeoutMs` passed. */
async function takeEvents(it: AsyncIterator<UsbmuxEvent>, n: number, timeoutMs = SLOW): Promise<UsbmuxEvent[]> {
  const out: UsbmuxEvent[] = [];
  while (out.length < n) {
    const r = await within(it.next(), timeoutMs, `event ${out.length + 1} of ${n}`);
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

for (const version of [0, 1] as const) {
  t.test(`protocol version ${version}`, async (t) => {
    const setup = await startDaemon(t, { sims: 1 });
    const client = new UsbmuxClient({ address: setup.address, version, timeoutMs: SLOW });
    const sim = setup.daemon.devices.visible()[0];
    t.ok(sim, 'the daemon has a visible simulated phone');

    await t.test('ListDevices sees the simulated phone', async (t) => {
      const list = await client.listDevices();
      t.equal(list.length, 1, 'exactly one device');
      const d = list[0];
      t.equal(d.deviceId, 1, 'the first device gets DeviceID 1');
      t.match(d.serialNumber, /^[0-9A-F]{8}-[0-9A-F]{16}$/, 'SerialNumber is the dashed 25-character UDID');
      t.equal(d.serialNumber, sim.serialNumber);
      t.equal(d.productId, 0x12a8, 'ProductID of the simulated iPhone');
      t.ok(d.locationId > 0, 'a non-zero LocationID');
      if (version === 1) {
        const p = d.properties;
        t.same(
          Object.keys(p).sort(),
          ['ConnectionSpeed', 'ConnectionType', 'DeviceID', 'LocationID', 'ProductID', 'SerialNumber', 'USBSerialNumber'],
          'Properties has exactly the keys Apple sends',
        );
        t.equal(p.ConnectionType, 'USB');
        t.equal(p.DeviceID, d.deviceId, 'Properties.DeviceID matches the entry');
        t.equal(p.LocationID, d.locationId);
        t.equal(p.ProductID, 0x12a8);
        t.equal(typeof p.ConnectionSpeed, 'number');
        t.ok((p.ConnectionSpeed as number) >= 480_000_000, 'ConnectionSpeed is at least high speed, in bit/s');
        t.equal(p.SerialNumber, d.serialNumber);
        t.equal(p.USBSerialNumber, d.serialNumber.replace('-', ''), 'USBSerialNumber is the serial without the dash');
        t.notMatch(String(p.USBSerialNumber), /-/, 'USBSerialNumber has no dash');
      }
    });

    await t.test('listen() yields an Attached for the present device first', async (t) => {
      const listener = await client.listen();
      t.teardown(() => listener.close());
      const it = listener[Symbol.asyncIterator]();
      const [first] = await takeEvents(it, 1);
      t.equal(first?.type, 'attached', 'the first event is an Attached');
      if (first?.type === 'attached') {
        t.equal(first.device.deviceId, sim.deviceId);
        t.equal(first.device.serialNumber, sim.serialNumber);
        t.equal(first.device.productId, 0x12a8);
        if (version === 1) t.equal(first.device.properties.USBSerialNumber, sim.usbSerialNumber);
      }
    });

    await t.test('Connect to port 7 is a raw echo pipe', async (t) => {
      const socket = await client.connect(sim.deviceId, ECHO_PORT);
      t.teardown(() => socket.destroy());
      const payload = Buffer.from(`hello over protocol ${version}, ` + 'x'.repeat(5000));
      socket.write(payload);
      const echoed = await within(readExactly(socket, payload.length), SLOW, 'the echo');
      t.ok(echoed.equals(payload), 'every byte comes back unchanged');
      const again = Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0]);
      socket.write(again);
      t.ok((await within(readExactly(socket, 16), SLOW, 'second echo')).equals(again), 'bytes that look like a Listen header are just data');
    });

    await t.test('Connect by UDID works too', async (t) => {
      const socket = await client.connect(sim.serialNumber, ECHO_PORT);
      t.teardown(() => socket.destroy());
      socket.write('by udid');
      t.equal((await within(readExactly(socket, 7), SLOW, 'echo')).toString(), 'by udid');
    });

    await t.test('Connect to a closed port fails with CONNREFUSED (3)', async (t) => {
      const f = await failure(client.connect(sim.deviceId, 4242));
      t.ok(f, 'the connect fails');
      t.equal(f?.result, 3, `result 3 (${f?.message})`);
      const lockdown = await client.connect(sim.deviceId, 62078);
      t.ok(lockdown, 'while 62078 (the sim\'s lockdownd) accepts');
      lockdown.destroy();
    });

    await t.test('Connect to an unknown DeviceID fails with BADDEV (2)', async (t) => {
      const f = await failure(client.connect(9999, ECHO_PORT));
      t.equal(f?.result, 2, `result 2 (${f?.message})`);
      const f0 = await failure(client.connect(0, ECHO_PORT));
      t.equal(f0?.result, 2, 'DeviceID 0 is no device either');
    });

    await t.test('the device still works after the failures', async (t) => {
      const socket = await client.connect(sim.deviceId, ECHO_PORT);
      t.teardown(() => socket.destroy());
      socket.write('still here');
      t.equal((await within(readExactly(socket, 10), SLOW, 'echo')).toString(), 'still here');
    });

    await t.test('ReadBUID: a stable uppercase UUID that SystemConfiguration.plist holds', async (t) => {
      // The first calls race to create it; they must all agree.
      const first = await Promise.all(Array.from({ length: 10 }, () => client.readBUID()));
      t.equal(new Set(first).size, 1, 'ten concurrent first calls get one BUID');
      const a = await client.readBUID();
      t.equal(a, first[0], 'the BUID the first calls created');
      const b = await client.readBUID();
      t.match(a, UUID_UPPER, `uppercase UUID form (${a})`);
      t.equal(b, a, 'the same BUID on the next call');
      const file = readFileSync(join(setup.configDir, 'SystemConfiguration.plist'), 'utf8');
      const conf = plist.parse(file) as Record<string, unknown>;
      t.equal(conf.SystemBUID, a, 'SystemConfiguration.plist has SystemBUID = the BUID');
    });

    await t.test('Save / Read / Delete pair record round trip', async (t) => {
      const record = {
        HostID: 'A1B2C3D4-0000-4000-8000-00000000000' + version,
        SystemBUID: await client.readBUID(),
        EscrowBag: Buffer.from('escrow-bag-bytes'),
        WiFiMACAddress: '00:11:22:33:44:55',
      };
      const xmlUdid = `00008101-00000000DEAD000${version}`;
      const binUdid = `00008101-00000000BEEF000${version}`;
      // XML body
      await client.savePairRecord(xmlUdid, Buffer.from(plist.build(record), 'utf8'));
      // Binary plist body, as libimobiledevice sends it
      const bin = creator(record);
      t.equal(bin.subarray(0, 8).toString('latin1'), 'bplist00', 'the second body really is binary');
      await client.savePairRecord(binUdid, bin);

      for (const udid of [xmlUdid, binUdid]) {
        const data = await client.readPairRecord(udid);
        const text = data.toString('utf8');
        t.match(text, /^<\?xml /, `${udid}: ReadPairRecord returns XML`);
        const parsed = plist.parse(text) as Record<string, unknown>;
        t.equal(parsed.HostID, record.HostID, `${udid}: HostID survives`);
        t.equal(parsed.SystemBUID, record.SystemBUID);
        t.equal(parsed.WiFiMACAddress, record.WiFiMACAddress);
        t.same(Buffer.from(parsed.EscrowBag as Buffer), record.EscrowBag, `${udid}: data survives`);
        const onDisk = readFileSync(join(setup.configDir, `${udid}.plist`));
        t.ok(onDisk.equals(data), `${udid}: the file is <config>/<UDID>.plist and Read returns its bytes`);
      }

      await client.deletePairRecord(xmlUdid);
      const gone = await failure(client.readPairRecord(xmlUdid));
      t.equal(gone?.result, 2, 'Read after Delete answers ENOENT (2)');
      const again = await failure(client.deletePairRecord(xmlUdid));
      t.equal(again?.result, 2, 'a second Delete answers ENOENT (2)');
      t.ok(await client.readPairRecord(binUdid), 'the other record is still there');
      await client.deletePairRecord(binUdid);
      const never = await failure(client.readPairRecord('00008101-0000000000000000'));
      t.equal(never?.result, 2, 'a record never saved is ENOENT (2)');
    });

    await t.test('SavePairRecord with the DeviceID of the phone broadcasts Paired', async (t) => {
      const listener = await client.listen();
      t.teardown(() => listener.close());
      const it = listener[Symbol.asyncIterator]();
      const [attached] = await takeEvents(it, 1);
      t.equal(attached?.type, 'attached');
      const record = Buffer.from(plist.build({ HostID: 'PAIRED-TEST', SystemBUID: await client.readBUID() }), 'utf8');

      // A DeviceID whose serial is not the PairRecordID: no broadcast.
      await client.savePairRecord('00008101-0000000000ABCDEF', record, sim.deviceId);
      await client.savePairRecord(sim.serialNumber, record, sim.deviceId);
      const [paired] = await takeEvents(it, 1);
      t.same(paired, { type: 'paired', deviceId: sim.deviceId }, 'the listener hears Paired for the phone (and only once)');

      // Without a DeviceID nobody is told.
      await client.savePairRecord(sim.serialNumber, record);
      const quiet = await Promise.race([it.next().then(() => 'event'), new Promise((r) => setTimeout(() => r('quiet'), 300))]);
      t.equal(quiet, 'quiet', 'no Paired without a DeviceID');
      await client.deletePairRecord(sim.serialNumber);
      await client.deletePairRecord('00008101-0000000000ABCDEF');
    });

    await t.test('ListListeners lists listening clients with their own ids', async (t) => {
      const alpha = await new UsbmuxClient({ address: setup.address, version, progName: 'alpha' }).listen();
      t.teardown(() => alpha.close());
      const beta = await new UsbmuxClient({ address: setup.address, version: 1, progName: 'beta' }).listen();
      t.teardown(() => beta.close());
      const requester = new UsbmuxClient({ address: setup.address, progName: 'requester' });
      const list = await requester.listListeners();
      t.equal(list.length, 2, 'both listeners and nobody else (the requester is not listening)');
      // A binary Listen carries no ProgName, so usbmuxd's default applies.
      const alphaName = version === 1 ? 'alpha' : 'unknown';
      const a = list.find((l) => l.ProgName === alphaName);
      const b = list.find((l) => l.ProgName === 'beta');
      t.ok(a, `a listener with ProgName ${alphaName}`);
      t.ok(b, 'a listener with ProgName beta');
      if (!a || !b) return;
      t.match(a['ID String'], new RegExp(`^\\d+-${alphaName}$`), "'ID String' is <id>-<ProgName>");
      t.match(b['ID String'], /^\d+-beta$/);
      const idA = Number(String(a['ID String']).split('-')[0]);
      const idB = Number(String(b['ID String']).split('-')[0]);
      t.not(idA, idB, 'each entry uses its own client id, not the requester\'s');
      t.ok(idA < idB, 'ids follow the order the clients connected in');
      // White-box: the ids are the server's own client numbers.
      const sessions = [...(setup.daemon.server as unknown as { clients: Set<{ id: number; state: string; info: { progName?: string } }> }).clients];
      const listening = sessions.filter((s) => s.state === 'listen');
      t.same(
        listening.map((s) => `${s.id}-${s.info.progName ?? 'unknown'}`).sort(),
        [a['ID String'], b['ID String']].sort(),
        "'ID String' numbers are the listeners' session ids",
      );
      t.equal(a.Blacklisted, false);
      t.equal(a.ConnType, 0);
      t.equal(b.kLibUSBMuxVersion, 3, 'kLibUSBMuxVersion as the client sent it');
      t.equal(a.kLibUSBMuxVersion, version === 1 ? 3 : 0, 'kLibUSBMuxVersion defaults to 0');
      alpha.close();
      await waitUntil(async () => (await requester.listListeners()).length === 1, 'the closed listener to leave the list');
      const after = await requester.listListeners();
      t.equal(after[0]?.ProgName, 'beta', 'a closed listener is no longer listed');
    });
  });
}

t.test('an existing lockdown directory (written by usbmuxd) is used as it is', async (t) => {
  const configDir = join(tempDir(t), 'lockdown');
  mkdirSync(configDir);
  const buid = '5D1B1C8A-0F3E-4B57-9C59-2B0E4C1A7F00';
  // usbmuxd writes XML; some hosts have a binary SystemConfiguration.plist.
  writeFileSync(join(configDir, 'SystemConfiguration.plist'), creator({ SystemBUID: buid }));
  const udid = '00008101-000000000000C0DE';
  const existing = plist.build({ HostID: 'EXISTING-HOST', SystemBUID: buid, DeviceCertificate: Buffer.from('cert') });
  writeFileSync(join(configDir, `${udid}.plist`), existing);
  const setup = await startDaemon(t, { sims: 1, configDir });
  const client = new UsbmuxClient({ address: setup.address });
  t.equal(await client.readBUID(), buid, 'ReadBUID returns the SystemBUID already on disk');
  t.equal((await client.readPairRecord(udid)).toString('utf8'), existing, 'ReadPairRecord returns the existing file verbatim');
  const conf = readFileSync(join(configDir, 'SystemConfiguration.plist'));
  t.equal(conf.subarray(0, 8).toString('latin1'), 'bplist00', 'SystemConfiguration.plist was not rewritten');
});

t.test('Properties for a 40-hex-UDID phone and a super-speed phone', async (t) => {
  const cable = join(tempDir(t), 'cable');
  const setup = await startDaemon(t, { sims: 0, cables: [cable] });
  const old = await startPeer({ cable, usb: { serial: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678' } });
  t.teardown(() => old.close());
  await visibleDevices(setup.address, 1);
  const fast = await startPeer({ cable, usb: { serial: '000081200006696026A2201E', speed: 4, maxPacketSize: 1024, productId: 0x12ab } });
  t.teardown(() => fast.close());
  const [a, b] = await visibleDevices(setup.address, 2);
  t.equal(a.serialNumber, 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678', 'a 40-character serial is the UDID as it is');
  t.equal(a.properties.USBSerialNumber, a.serialNumber, 'and the USB serial too');
  t.equal(b.serialNumber, '00008120-0006696026A2201E', 'the reference trace\'s serial gets its dash');
  t.equal(b.properties.USBSerialNumber, '000081200006696026A2201E');
  t.equal(b.properties.ConnectionSpeed, 5_000_000_000, 'super speed is 5 Gbit/s (more than 32 bits)');
  t.equal(b.productId, 0x12ab);
  t.not(a.locationId, b.locationId, 'LocationIDs differ between phones');
  const binary = await new UsbmuxClient({ address: setup.address, version: 0 }).listDevices();
  t.same(binary.map((d) => d.serialNumber), [a.serialNumber, b.serialNumber], 'DEVICE_ADD serials match the plist SerialNumbers');
});

t.test('the socket: mode 0666, removed on stop, never replacing a file or a live daemon', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'usbmuxd');
  const start = async (configDir: string, at = path): Promise<Daemon | Error> => {
    try {
      const d = await Daemon.start({ address: { kind: 'unix', path: at }, configDir: join(dir, configDir), log: silentLogger });
      t.teardown(() => d.stop());
      return d;
    } catch (err) {
      return err as Error;
    }
  };
  const reachable = () => new UsbmuxClient({ address: `UNIX:${path}`, timeoutMs: 5000 }).readBUID().then(() => true, () => false);

  const daemon = await start('a');
  if (daemon instanceof Error) throw daemon;
  t.equal(statSync(path).mode & 0o777, 0o666, 'the socket is 0666, as usbmuxd chmods it');

  const second = await start('b');
  t.type(second, Error, 'a second daemon on a live socket refuses to start');
  t.match((second as Error).message, /another usbmuxd/);
  t.ok(existsSync(path), 'the refused daemon leaves the live socket in place');
  t.ok(await reachable(), 'the first daemon is still reachable after the refused start');
  await daemon.stop();
  t.notOk(existsSync(path), 'stop removes the socket');

  // A stale socket (its daemon was killed) is taken over.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  t.ok(existsSync(path) && statSync(path).isSocket(), 'a killed process left a stale socket file behind');
  const replaced = await start('c');
  t.notOk(replaced instanceof Error, `a stale socket is replaced (${replaced instanceof Error ? replaced.message : 'started'})`);
  t.ok(await reachable(), 'and the new daemon answers on it');
  if (!(replaced instanceof Error)) await replaced.stop();

  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'precious');
  const refused = await start('d', file);
  t.type(refused, Error, 'a regular file at the path is not replaced');
  t.match((refused as Error).message, /not a socket/);
  t.ok(existsSync(file), 'the refused daemon leaves the regular file in place');
  t.equal(existsSync(file) ? readFileSync(file, 'utf8') : '(deleted)', 'precious', 'with its content');
});
