// The lockdown client against the simulated phone (pairing with generated
// certificates, TLS session, StopSession and a second session, StartService),
// a record it writes read back by Debian's ideviceinfo, and a hostile
// "lockdownd" on a loopback socket: every bad answer is a typed error.
import t from 'tap';
import { X509Certificate, createPublicKey, generateKeyPairSync } from 'node:crypto';
import net from 'node:net';

import { UsbmuxClient } from '../src/client/index.js';
import { AfcClient } from '../src/afc/client.js';
import { LockdownClient, startServiceTls } from '../src/lockdown/client.js';
import { LockdownError } from '../src/lockdown/errors.js';
import { generatePairRecord, hostCredentials } from '../src/pairing/certificates.js';
import { pairDevice, preparePairRecord } from '../src/pairing/pair.js';
import { toXml } from '../src/protocol/plist-codec.js';
import { encodeFrame } from '../src/lockdown/framing.js';
import { findOnPath, run } from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { SLOW, startDaemon } from './helpers/usbmuxd-harness.js';

const BUID = '11111111-2222-3333-4444-555555555555';

t.test('pair, session, StopSession, a second session, StartService; Debian reads the record', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const usbmux = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [device] = await usbmux.listDevices();
  const udid = device!.serialNumber;
  const lockdown = new LockdownClient(await usbmux.connect(udid, 62078), { timeoutMs: SLOW });
  t.teardown(() => lockdown.destroy());
  t.equal(await lockdown.queryType(), 'com.apple.mobile.lockdown');
  t.equal(await lockdown.getValue('ProductVersion'), '17.5', 'a pre-session key');
  await t.rejects(lockdown.getValue('SerialNumber'), { name: 'LockdownError', code: 'GetProhibited' }, 'a protected key before a session');

  const pending = await preparePairRecord(lockdown, BUID);
  const devicePem = Buffer.from((await lockdown.getValue('DevicePublicKey')) as Uint8Array).toString();
  const deviceCert = new X509Certificate(Buffer.from(pending.DeviceCertificate as Uint8Array));
  t.ok(
    deviceCert.publicKey.export({ type: 'spki', format: 'der' }).equals(createPublicKey(devicePem).export({ type: 'spki', format: 'der' })),
    'the device certificate carries the phone key',
  );
  t.ok(deviceCert.verify(new X509Certificate(Buffer.from(pending.RootCertificate as Uint8Array)).publicKey), 'signed by the root');
  t.equal(deviceCert.serialNumber, '01', 'serial 1');
  const record = await pairDevice(lockdown, pending);
  t.ok(record.EscrowBag instanceof Uint8Array, 'the EscrowBag from the Pair reply is in the record');
  t.type(record.HostPrivateKey, Uint8Array);
  t.equal(record.SystemBUID, BUID);
  t.equal(setup.peers[0]!.lockdownd.pairRecords.size, 1, 'the phone stored the host');

  const creds = hostCredentials(record);
  const first = await lockdown.startSession(record.HostID as string, BUID, creds);
  t.equal(first.ssl, true, 'TLS session');
  t.match(await lockdown.getValue('SerialNumber'), /^[0-9A-Z]{10}$/, 'a protected key over TLS');
  await lockdown.stopSession();
  t.equal(await lockdown.queryType(), 'com.apple.mobile.lockdown', 'plaintext again on the same connection');
  const second = await lockdown.startSession(record.HostID as string, BUID, creds);
  t.not(second.sessionId, first.sessionId, 'a second session');
  const hb = await lockdown.startService('com.apple.mobile.heartbeat');
  t.ok(hb.port >= 49152 && !hb.ssl, `heartbeat on port ${hb.port}, plaintext`);
  await t.rejects(lockdown.startService('com.apple.no.such'), { code: 'InvalidService' });
  await lockdown.close();
  t.ok(lockdown.closed, 'Goodbye closes');

  // Saved through the daemon as libimobiledevice does; Debian's tool uses it.
  await usbmux.savePairRecord(udid, Buffer.from(toXml({ ...record, SystemBUID: await usbmux.readBUID() })), device!.deviceId);
  const info = findOnPath('ideviceinfo');
  if (!info) return t.pass('ideviceinfo with our record', { skip: requireTool('ideviceinfo', 'libimobiledevice-utils') });
  const r = await run(info, ['-u', udid, '-k', 'ProductType'], { env: { ...process.env, USBMUXD_SOCKET_ADDRESS: setup.address }, timeoutMs: SLOW });
  t.equal(r.stdout, 'iPhone15,3\n', `ideviceinfo with our record: ${JSON.stringify(r.stdout)} ${r.stderr}`);
});

/** A one-connection "lockdownd" that answers each request with `answer`. */
async function fakeLockdownd(t: { teardown(fn: () => void): void }, answer: (socket: net.Socket, request: number) => void) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let n = 0;
    socket.on('data', () => answer(socket, ++n));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  return new LockdownClient(socket, { timeoutMs: 500 });
}

t.test('a hostile or silent lockdownd: typed errors, never a hang', async (t) => {
  // [what, the answer, the code, whether the connection is beyond use]
  const cases: Array<[string, (s: net.Socket) => void, string, boolean]> = [
    ['a reply that is not a plist', (s) => s.write(Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('hello')])), 'EPROTO', true],
    ['a plist that is not a dict', (s) => s.write(encodeFrame(['QueryType'])), 'EPROTO', true],
    ['a reply with the wrong types', (s) => s.write(encodeFrame({ Request: 'QueryType', Type: 42 })), 'EPROTO', false],
    ['a frame of 2 GiB', (s) => s.write(Buffer.from([0x80, 0, 0, 0])), 'EPROTO', true],
    ['a hang-up', (s) => s.destroy(), 'ECONNRESET', true],
    ['silence', () => {}, 'ETIMEDOUT', true],
  ];
  for (const [what, answer, code, dead] of cases) {
    const client = await fakeLockdownd(t, (s) => answer(s));
    const err = await client.queryType().then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof LockdownError, `${what}: a LockdownError`);
    t.equal((err as LockdownError).code, code, `${what}: ${code}`);
    t.equal(client.closed, dead, dead ? `${what}: the connection is closed` : `${what}: the framing held, the connection is usable`);
    client.destroy();
  }

  const tlsFail = await fakeLockdownd(t, (s, n) => {
    if (n === 1) s.write(encodeFrame({ Request: 'StartSession', SessionID: 'X', EnableSessionSSL: true }));
    else s.write(Buffer.from('this is not a TLS ServerHello, just text\n'));
  });
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const someRecord = await generatePairRecord({ devicePublicKeyPem: publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(), systemBuid: BUID });
  const err = await tlsFail.startSession('H', BUID, hostCredentials(someRecord)).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof LockdownError, `TLS failure: ${(err as Error).message}`);
  t.ok(['ETLS', 'EPROTO'].includes((err as LockdownError).code), `code ${(err as LockdownError).code}`);
});

t.test('StartService with TLS: com.apple.afc2 on a jailbroken phone', async (t) => {
  const setup = await startDaemon(t, { sims: 1, sim: { jailbroken: true } });
  const usbmux = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [device] = await usbmux.listDevices();
  const udid = device!.serialNumber;
  const lockdown = new LockdownClient(await usbmux.connect(udid, 62078), { timeoutMs: SLOW });
  t.teardown(() => lockdown.destroy());
  const record = await pairDevice(lockdown, await preparePairRecord(lockdown, BUID));
  await lockdown.startSession(record.HostID as string, BUID, hostCredentials(record));
  const plainAfc = await lockdown.startService('com.apple.afc');
  t.equal(plainAfc.ssl, false, 'com.apple.afc: no EnableServiceSSL');
  const afc2 = await lockdown.startService('com.apple.afc2');
  t.equal(afc2.ssl, true, 'com.apple.afc2: EnableServiceSSL');

  const secure = await startServiceTls(await usbmux.connect(udid, afc2.port), hostCredentials(record));
  t.equal(secure.getProtocol(), 'TLSv1.2', 'service TLS 1.2');
  const afc = new AfcClient(secure);
  t.teardown(() => afc.destroy());
  t.equal((await afc.getDeviceInfo()).model, 'iPhone15,3', 'AFC answers over the service TLS');

  // Speaking AFC in plaintext to a TLS service gets nowhere.
  const again = await lockdown.startService('com.apple.afc2');
  const raw = await usbmux.connect(udid, again.port);
  raw.on('error', () => {});
  raw.write(Buffer.concat([Buffer.from('CFA6LPAA'), Buffer.alloc(32)]));
  await new Promise<void>((resolve) => raw.once('close', () => resolve()));
  t.pass('a plaintext client is cut off');
});
