// The simulated phone's trust dialog ("auto" / "prompt" / "deny"), driven by
// Debian's idevicepair, and the lockdown services StartService hands out:
// the notification proxy (also without a session, as insecure_notification_proxy)
// relaying com.apple.mobile.lockdown.request_pair when the user taps Trust,
// and the heartbeat's Marco / Polo.
import t from 'tap';
import { join } from 'node:path';

import { UsbmuxClient } from '../src/client/index.js';
import { isPlistDict, parsePlist, toXml, type PlistDict } from '../src/protocol/plist-codec.js';
import { ServiceOwner } from '../src/registry/index.js';
import { simIdentity } from '../src/sim/identity.js';
import { Lockdownd } from '../src/sim/lockdown/lockdownd.js';
import { REQUEST_PAIR_NOTIFICATION } from '../src/sim/lockdown/values.js';
import { startPeer } from '../src/sim/peer.js';
import { DYNAMIC_PORT_MAX, DYNAMIC_PORT_MIN } from '../src/sim/service-ports.js';
import { HEARTBEAT_SERVICE } from '../src/sim/services/heartbeat.js';
import { findOnPath, run } from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { LockdownConn } from './helpers/lockdown-conn.js';
import { plistRequest, RawClient, SLOW, startDaemon, tempDir, visibleDevices, waitUntil, within } from './helpers/usbmuxd-harness.js';

const LOCKDOWN = 62078;


/** Waits until the one phone is listed again under a DeviceID other than `before`. */
async function reenumerated(address: string, before: number): Promise<number> {
  const list = await waitUntil(async () => {
    const l = await new UsbmuxClient({ address, timeoutMs: 5000 }).listDevices();
    return l.length === 1 && l[0]!.deviceId !== before ? l : null;
  }, 'the phone to come back after re-enumerating');
  return list[0]!.deviceId;
}

t.test('Lockdownd trust modes, in process', async (t) => {
  const identity = simIdentity('00008101000000000000CAFE');
  const ld = new Lockdownd(identity, { trust: 'prompt' });
  // Record validation comes first; a bad record never opens the dialog.
  t.same(ld.handle({}, { Request: 'Pair' }), { Request: 'Pair', Error: 'MissingPairRecord' });
  t.equal(ld.trustDialog, 'none');
  t.same(ld.handle({}, { Request: 'StartService', Service: 'com.apple.nope' }), { Request: 'StartService', Error: 'SessionInactive' });
  const owner = new ServiceOwner('test');
  ld.services.register('com.apple.mobile.heartbeat', owner, 1);
  ld.services.register('com.apple.mobile.insecure_notification_proxy', owner, 2, { withoutSession: true });
  t.teardown(() => ld.close());
  const dynamicPort = (v: unknown) => typeof v === 'number' && v >= DYNAMIC_PORT_MIN && v <= DYNAMIC_PORT_MAX;
  const session = { session: { id: 'S', hostId: 'H' } };
  t.same(ld.handle(session, { Request: 'StartService', Service: 'com.apple.nope' }), {
    Request: 'StartService',
    Service: 'com.apple.nope',
    Error: 'InvalidService',
  });
  t.same(ld.handle(session, { Request: 'StartService' }), { Request: 'StartService', Error: 'MissingService' });
  const hb = ld.handle(session, { Request: 'StartService', Service: 'com.apple.mobile.heartbeat' });
  t.match(hb, { Request: 'StartService', Service: 'com.apple.mobile.heartbeat' });
  t.ok(dynamicPort(hb.Port), `a port in the dynamic range (${hb.Port})`);
  t.notOk('EnableServiceSSL' in hb, 'the heartbeat is plaintext');
  const again = ld.handle(session, { Request: 'StartService', Service: 'com.apple.mobile.heartbeat' });
  t.not(again.Port, hb.Port, 'each StartService gets its own port');
  t.same(ld.handle({}, { Request: 'StartService', Service: 'com.apple.mobile.heartbeat' }), { Request: 'StartService', Error: 'SessionInactive' });
  const np = ld.handle({}, { Request: 'StartService', Service: 'com.apple.mobile.insecure_notification_proxy' });
  t.match(np, { Request: 'StartService', Service: 'com.apple.mobile.insecure_notification_proxy' });
  t.ok(dynamicPort(np.Port), 'without a session too');
  const posted: string[] = [];
  ld.notificationListeners.push((n) => posted.push(n));
  ld.trust();
  t.same(posted, [REQUEST_PAIR_NOTIFICATION], 'trust() posts request_pair');
});

t.test('trust dialog and services through the daemon', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [device] = await client.listDevices();
  const udid = device!.serialNumber;
  const peer = setup.peers[0]!;
  const lockdownd = peer.lockdownd;
  t.teardown(() => {
    lockdownd.trustMode = 'auto';
    lockdownd.trustDelayMs = 0;
    lockdownd.trustDialog = 'none';
  });
  const pairTool = findOnPath('idevicepair')!; // the tests that run it skip without it
  const env = { ...process.env, USBMUXD_SOCKET_ADDRESS: setup.address };
  const deniedText = `ERROR: Device ${udid} said that the user denied the trust dialog.\n`;
  const pendingText = `ERROR: Please accept the trust dialog on the screen of device ${udid}, then attempt to pair again.\n`;
  const show = (what: string, r: { code: number | null; stdout: string; stderr: string }) =>
    t.comment(`${what}: exit ${r.code}\nstdout: ${JSON.stringify(r.stdout)}\nstderr: ${JSON.stringify(r.stderr)}`);

  t.test("deny: Debian's idevicepair is told the user denied", { skip: requireTool('idevicepair', 'libimobiledevice-utils') }, async (t) => {
    lockdownd.trustMode = 'deny';
    const r = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    show(`deny: idevicepair -u ${udid} pair`, r);
    t.not(r.code, 0, 'pair fails');
    t.equal(r.stdout, deniedText, "idevicepair's denied message");
    t.equal(lockdownd.pairRecords.size, 0, 'nothing stored');
  });

  t.test('prompt: pending until trust(), then idevicepair succeeds', { skip: requireTool('idevicepair', 'libimobiledevice-utils') }, async (t) => {
    lockdownd.trustMode = 'prompt';
    lockdownd.trustDialog = 'none';
    const first = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    show(`prompt: idevicepair -u ${udid} pair`, first);
    t.not(first.code, 0, 'first pair: not yet');
    t.equal(first.stdout, pendingText, "idevicepair's pending message");
    t.equal(lockdownd.trustDialog, 'pending', 'the dialog shows');
    const again = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    t.equal(again.stdout, pendingText, 'still pending before the tap');
    const before = (await visibleDevices(setup.address, 1))[0]!.deviceId;
    peer.trust();
    const after = await reenumerated(setup.address, before);
    t.not(after, before, `the phone re-enumerated after the tap: DeviceID ${before} -> ${after}`);
    const second = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    show(`prompt, after trust(): idevicepair -u ${udid} pair`, second);
    t.equal(second.code, 0, 'second pair: exit 0');
    t.match(second.stdout, `SUCCESS: Paired with device ${udid}`);
    t.equal(lockdownd.pairRecords.size, 1, 'the sim stored the record');
    t.equal(lockdownd.trustDialog, 'none', 'one tap pairs one host');
    const unpair = await run(pairTool, ['-u', udid, 'unpair'], { env, timeoutMs: SLOW });
    t.equal(unpair.code, 0, 'unpair');

    // deny() on a pending dialog: UserDeniedPairing once, then the dialog again.
    const pending = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    t.equal(pending.stdout, pendingText);
    peer.deny();
    const denied = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    show(`prompt, after deny(): idevicepair -u ${udid} pair`, denied);
    t.not(denied.code, 0);
    t.equal(denied.stdout, deniedText);
    t.equal(lockdownd.pairRecords.size, 0);
  });

  t.test('auto with trustDelayMs: pending, then accepted by itself', { skip: requireTool('idevicepair', 'libimobiledevice-utils') }, async (t) => {
    lockdownd.trustMode = 'auto';
    lockdownd.trustDelayMs = 300;
    lockdownd.trustDialog = 'none';
    t.teardown(() => {
      lockdownd.trustDelayMs = 0;
    });
    const currentId = (await visibleDevices(setup.address, 1))[0]!.deviceId;
    const first = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    t.equal(first.stdout, pendingText, 'the dialog shows first');
    await waitUntil(() => lockdownd.trustDialog === 'accepted', 'the delayed tap');
    await reenumerated(setup.address, currentId);
    const second = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    t.equal(second.code, 0, 'then pair succeeds');
    t.equal(second.stdout, `SUCCESS: Paired with device ${udid}\n`);
    const unpair = await run(pairTool, ['-u', udid, 'unpair'], { env, timeoutMs: SLOW });
    t.equal(unpair.code, 0, 'unpair');
  });

  t.test('insecure_notification_proxy without a session relays request_pair on trust()', async (t) => {
    lockdownd.trustMode = 'prompt';
    lockdownd.trustDialog = 'none';
    const ld = new LockdownConn(await client.connect(udid, LOCKDOWN));
    t.teardown(() => ld.socket.destroy());
    const startNp = async () => {
      const r = await ld.request({ Label: 'tap', Request: 'StartService', Service: 'com.apple.mobile.insecure_notification_proxy' });
      t.match(r, { Request: 'StartService', Service: 'com.apple.mobile.insecure_notification_proxy' });
      t.notOk('EnableServiceSSL' in r, 'plaintext');
      return r.Port as number;
    };
    const npPort = await startNp();
    t.same(
      await ld.request({ Request: 'StartService', Service: 'com.apple.mobile.notification_proxy' }),
      { Request: 'StartService', Error: 'SessionInactive' },
      'the secure proxy needs a session',
    );
    t.same(
      await ld.request({ Request: 'StartService', Service: 'com.apple.no.such.service' }),
      { Request: 'StartService', Error: 'SessionInactive' },
      'so does an unknown name (no session: SessionInactive first)',
    );

    const np = new LockdownConn(await client.connect(udid, npPort));
    t.teardown(() => np.socket.destroy());
    await t.rejects(client.connect(udid, npPort), /refused|ECONNREFUSED/i, 'a StartService port serves one connection');
    const otherPort = await startNp();
    t.not(otherPort, npPort, 'a second StartService: a second port');
    const other = new LockdownConn(await client.connect(udid, otherPort));
    t.teardown(() => other.socket.destroy());
    np.send({ Command: 'ObserveNotification', Name: REQUEST_PAIR_NOTIFICATION });
    other.send({ Command: 'ObserveNotification', Name: 'com.example.other' });
    // A round trip so the observe is in before trust(): post something we also observe.
    np.send({ Command: 'ObserveNotification', Name: 'com.example.sync' });
    np.send({ Command: 'PostNotification', Name: 'com.example.sync' });
    t.same(await np.next('the sync relay'), { Command: 'RelayNotification', Name: 'com.example.sync' }, 'PostNotification relays');
    other.send({ Command: 'PostNotification', Name: 'com.example.other' });
    t.same(await other.next(), { Command: 'RelayNotification', Name: 'com.example.other' }, 'the other observer saw only its own name');
    other.send({ Command: 'Shutdown' });
    t.same(await other.next('ProxyDeath'), { Command: 'ProxyDeath' }, 'Shutdown -> ProxyDeath');

    const before = (await visibleDevices(setup.address, 1))[0]!.deviceId;
    peer.trust();
    t.same(await np.next('request_pair'), { Command: 'RelayNotification', Name: REQUEST_PAIR_NOTIFICATION }, 'request_pair arrives');
    await within(np.waitClosed(), SLOW, 'the proxy connection to end');
    t.pass('then the phone drops off USB: the connection ends');
    t.not(await reenumerated(setup.address, before), before, 'and comes back with a new DeviceID');
  });
});

t.test('heartbeat: Marco, Polo, Marco; silence closes', async (t) => {
  const cable = join(tempDir(t), 'cable');
  const setup = await startDaemon(t, { sims: 0, cables: [cable] });
  const peer = await startPeer({ cable, heartbeat: { interval: 1, intervalMs: 100, timeoutMs: 6000 } });
  t.teardown(() => peer.close());
  const [device] = await visibleDevices(setup.address, 1);
  // The phone speaks first here, so a byte-for-byte client reads the Connect
  // result and whatever follows it from one buffer.
  const raw = await RawClient.open(t, setup.socketPath);
  const heartbeatPort = peer.lockdownd.openServicePort(peer.lockdownd.services.lookUp(HEARTBEAT_SERVICE));
  const swapped = ((heartbeatPort & 0xff) << 8) | (heartbeatPort >> 8);
  // The port reaches the sim's data plane as posted work, which a StartService
  // reply would order before the Connect; here nothing does, so a refusal (it
  // leaves the client in COMMAND and the port unused) is asked again.
  let answer: PlistDict = {};
  for (let attempt = 0; attempt < 20; attempt++) {
    raw.send(plistRequest(1, { MessageType: 'Connect', DeviceID: device!.deviceId, PortNumber: swapped }));
    answer = (await raw.readPlist()).dict as PlistDict;
    if (answer.Number !== 3) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.same(answer, { MessageType: 'Result', Number: 0 }, 'connected to the heartbeat port');
  const next = async (): Promise<PlistDict> => {
    const n = (await raw.read(4)).readUInt32BE(0);
    const v = parsePlist(await raw.read(n));
    if (!isPlistDict(v)) throw new Error('not a dict');
    return v;
  };
  const polo = Buffer.from(toXml({ Command: 'Polo' }), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(polo.length, 0);
  t.same(await next(), { Command: 'Marco', Interval: 1, SupportsSleepyTime: true }, 'Marco on connect');
  raw.send(Buffer.concat([head, polo]));
  t.same(await next(), { Command: 'Marco', Interval: 1, SupportsSleepyTime: true }, 'Marco again after Polo');
  await within(new Promise<void>((r) => (raw.closed ? r() : raw.socket.once('close', () => r()))), SLOW, 'the close');
  t.pass('no Polo: the phone hangs up');
});
