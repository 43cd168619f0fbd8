// The simulated phone's lockdownd, pairing slice: Pair / ValidatePair /
// Unpair with "auto" trust, StartSession with the in-band TLS upgrade on the
// same connection, StopSession back to plaintext, driven both by Debian's
// idevicepair / ideviceinfo and by a hand-written host in this file.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';

import forge from 'node-forge';

import { UsbmuxClient } from '../src/client/index.js';
import type { PlistDict } from '../src/protocol/plist-codec.js';
import { simIdentity } from '../src/sim/identity.js';
import { Lockdownd } from '../src/sim/lockdown/lockdownd.js';
import { findOnPath, run } from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { hostPairRecord, TEST_BUID as BUID } from './helpers/host-pairing.js';
import { FrameQueue, lockdownFrame } from './helpers/lockdown-conn.js';
import { SLOW, startDaemon, within } from './helpers/usbmuxd-harness.js';

const LOCKDOWN = 62078;


// ---- a lockdown host connection that can go TLS and back ----


/**
 * The host side of §1.7.5, as go-ios does it: TLS runs over a pipe fed from
 * the raw socket, so that after StopSession the host can send close_notify,
 * take the device's close_notify, and go on in plaintext.
 */
class HostConnection {
  private plain = new FrameQueue();
  private secure?: FrameQueue;
  private tlsSocket?: tls.TLSSocket;
  private pipe?: Duplex;
  closed = false;
  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      if (this.pipe) this.pipe.push(d);
      else this.plain.push(d);
    });
    socket.on('close', () => {
      this.closed = true;
      this.plain.close();
      this.secure?.close();
    });
    socket.on('error', () => {});
  }

  async request(dict: PlistDict): Promise<PlistDict> {
    if (this.tlsSocket) {
      this.tlsSocket.write(lockdownFrame(dict));
      return within(this.secure!.next(), SLOW, `TLS reply to ${String(dict.Request)}`);
    }
    this.socket.write(lockdownFrame(dict));
    return within(this.plain.next(), SLOW, `reply to ${String(dict.Request)}`);
  }

  /** Client TLS over the pipe; resolves with the negotiated protocol and cipher. */
  async startTls(cert: string, key: string): Promise<{ protocol: string | null; cipher: string; serverCertPem: string }> {
    const raw = this.socket;
    this.pipe = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        raw.write(chunk);
        cb();
      },
      final(cb) {
        cb();
      },
    });
    this.secure = new FrameQueue();
    const secure = this.secure;
    const s = tls.connect({ socket: this.pipe, cert, key, rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
    this.tlsSocket = s;
    s.on('data', (d: Buffer) => secure.push(d));
    s.on('error', () => secure.close());
    await within(new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    }), SLOW, 'the TLS handshake');
    const peer = s.getPeerX509Certificate();
    return { protocol: s.getProtocol(), cipher: s.getCipher().name, serverCertPem: peer ? peer.toString() : '' };
  }

  /** After the StopSession reply: our close_notify out, the device's in, then plaintext. */
  async stopTls(): Promise<void> {
    const s = this.tlsSocket!;
    const ended = new Promise<void>((r) => {
      s.once('end', () => r());
      s.once('close', () => r());
    });
    s.end();
    await within(ended, SLOW, "the device's close_notify");
    this.tlsSocket = undefined;
    this.pipe = undefined;
    this.secure = undefined;
  }

  waitClosed(): Promise<void> {
    return within(
      new Promise<void>((r) => (this.closed ? r() : this.socket.once('close', () => r()))),
      SLOW,
      'the connection to close',
    );
  }
}

t.test('device pair store persists under a state dir', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-simstate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const identity = simIdentity('00008101000000000000BEEF');
  const hostId = '11111111-2222-3333-4444-555555555555';
  const host = await hostPairRecord(identity.devicePublicKeyPem(), hostId);
  const first = new Lockdownd(identity, { stateDir: dir });
  const reply = first.handle({}, { Request: 'Pair', ProtocolVersion: '2', PairRecord: host.record });
  t.equal(reply.Error, undefined, 'paired');
  t.same(readdirSync(dir), [`${hostId}.plist`]);
  const second = new Lockdownd(identity, { stateDir: dir });
  t.ok(second.pairRecords.has(hostId), 'a new lockdownd knows the host');
  t.same(second.handle({}, { Request: 'ValidatePair', PairRecord: { HostID: hostId } }), { Request: 'ValidatePair' });
  t.same(second.handle({}, { Request: 'Unpair', PairRecord: { HostID: hostId } }), { Request: 'Unpair' });
  t.same(readdirSync(dir), [], 'unpair removes the file');
});

t.test('pairing and sessions through the daemon', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [device] = await client.listDevices();
  const udid = device!.serialNumber;
  const lockdownd = setup.peers[0]!.lockdownd;
  const open = async () => new HostConnection(await client.connect(udid, LOCKDOWN));

  t.test("Debian's idevicepair and ideviceinfo", { skip: requireTool('idevicepair', 'libimobiledevice-utils') || requireTool('ideviceinfo', 'libimobiledevice-utils') }, async (t) => {
    const pairTool = findOnPath('idevicepair')!;
    const infoTool = findOnPath('ideviceinfo')!;
    const env = { ...process.env, USBMUXD_SOCKET_ADDRESS: setup.address };
    const show = (what: string, r: { code: number | null; stdout: string; stderr: string }) =>
      t.comment(`${what}: exit ${r.code}\n${r.stdout}${r.stderr}`);

    const pair = await run(pairTool, ['-u', udid, 'pair'], { env, timeoutMs: SLOW });
    show(`idevicepair -u ${udid} pair`, pair);
    t.equal(pair.code, 0, 'pair: exit 0');
    t.match(pair.stdout, `SUCCESS: Paired with device ${udid}`);
    t.equal(lockdownd.pairRecords.size, 1, 'the sim stored one pair record');
    const stored = lockdownd.pairRecords.get(lockdownd.pairRecords.hostIds()[0]!)!;
    const deviceCert = forge.pki.certificateFromPem(Buffer.from(stored.DeviceCertificate).toString());
    t.comment(`libimobiledevice's DeviceCertificate signature: ${forge.pki.oids[deviceCert.siginfo.algorithmOid] ?? deviceCert.siginfo.algorithmOid}`);

    const validate = await run(pairTool, ['-u', udid, 'validate'], { env, timeoutMs: SLOW });
    show(`idevicepair -u ${udid} validate`, validate);
    t.equal(validate.code, 0, 'validate: exit 0');
    t.match(validate.stdout, `SUCCESS: Validated pairing with device ${udid}`);

    const version = await run(infoTool, ['-u', udid, '-k', 'ProductVersion'], { env, timeoutMs: SLOW });
    show(`ideviceinfo -u ${udid} -k ProductVersion`, version);
    t.equal(version.code, 0, 'ideviceinfo (session, TLS): exit 0');
    t.equal(version.stdout, '17.5\n');
    t.comment(`libimobiledevice's session TLS: ${JSON.stringify(lockdownd.lastTls)}`);
    t.equal(lockdownd.lastTls?.protocol, 'TLSv1.2', 'libimobiledevice negotiated TLS 1.2');
    t.equal(lockdownd.lastTls?.clientCertificate, true, 'and presented a client certificate');

    const all = await run(infoTool, ['-u', udid], { env, timeoutMs: SLOW });
    t.equal(all.code, 0, 'ideviceinfo (all values): exit 0');
    t.match(all.stdout, /^SerialNumber: [0-9A-Z]{10}$/m, 'a session gives out keys beyond the pre-session list');
    t.match(all.stdout, new RegExp(`^UniqueDeviceID: ${udid}$`, 'm'));

    const domain = await run(infoTool, ['-u', udid, '-q', 'com.apple.international', '-k', 'Locale'], { env, timeoutMs: SLOW });
    t.equal(domain.code, 0);
    t.equal(domain.stdout, 'en_US\n', 'named domains inside a session');

    const unpair = await run(pairTool, ['-u', udid, 'unpair'], { env, timeoutMs: SLOW });
    show(`idevicepair -u ${udid} unpair`, unpair);
    t.equal(unpair.code, 0, 'unpair: exit 0');
    t.match(unpair.stdout, `SUCCESS: Unpaired with device ${udid}`);
    t.equal(lockdownd.pairRecords.size, 0, 'the sim forgot the host');
  });

  t.test('Pair validates the record', async (t) => {
    const c = await open();
    t.teardown(() => c.socket.destroy());
    const key = (await c.request({ Request: 'GetValue', Key: 'DevicePublicKey' })).Value as Uint8Array;
    const devicePem = Buffer.from(key).toString();
    const good = await hostPairRecord(devicePem, 'AAAAAAAA-0000-0000-0000-000000000001');
    const other = await hostPairRecord(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(), 'AAAAAAAA-0000-0000-0000-000000000002');
    const pair = (record: PlistDict | undefined) =>
      c.request({ Request: 'Pair', ProtocolVersion: '2', ...(record ? { PairRecord: record } : {}), PairingOptions: { ExtendedPairingErrors: true } });

    t.same(await pair(undefined), { Request: 'Pair', Error: 'MissingPairRecord' });
    t.same(await pair(other.record), { Request: 'Pair', Error: 'InvalidPairRecord' }, "device cert with another key");
    t.same(await pair({ ...good.record, HostCertificate: other.record.HostCertificate! }), { Request: 'Pair', Error: 'InvalidPairRecord' }, 'host cert from another root');
    const { HostID: _h, ...noHostId } = good.record;
    t.same(await pair(noHostId), { Request: 'Pair', Error: 'InvalidPairRecord' }, 'no HostID');
    const { SystemBUID: _b, ...noBuid } = good.record;
    t.same(await pair(noBuid), { Request: 'Pair', Error: 'InvalidPairRecord' }, 'no SystemBUID');
    t.same(await pair({ ...good.record, RootCertificate: Buffer.from('not a cert') }), { Request: 'Pair', Error: 'InvalidPairRecord' });
    t.equal(lockdownd.pairRecords.size, 0, 'nothing stored');

    const ok = await pair(good.record);
    t.equal(ok.Request, 'Pair');
    t.equal(ok.Error, undefined);
    t.equal((ok.EscrowBag as Uint8Array).length, 32, 'EscrowBag');
    t.same(await c.request({ Request: 'ValidatePair', ProtocolVersion: '2', PairRecord: good.record }), { Request: 'ValidatePair' });
    t.same(await c.request({ Request: 'ValidatePair', PairRecord: other.record }), { Request: 'ValidatePair', Error: 'InvalidHostID' });
    t.same(await c.request({ Request: 'Unpair', ProtocolVersion: '2', PairRecord: { HostID: good.record.HostID! } }), { Request: 'Unpair' });
    t.same(await c.request({ Request: 'Unpair', PairRecord: { HostID: good.record.HostID! } }), { Request: 'Unpair', Error: 'InvalidHostID' });
  });

  t.test('StartSession, TLS, StopSession and a second session on one connection', async (t) => {
    const c = await open();
    t.teardown(() => c.socket.destroy());
    const key = (await c.request({ Request: 'GetValue', Key: 'DevicePublicKey' })).Value as Uint8Array;
    const host = await hostPairRecord(Buffer.from(key).toString(), 'BBBBBBBB-0000-0000-0000-000000000001');
    t.equal((await c.request({ Request: 'Pair', ProtocolVersion: '2', PairRecord: host.record })).Error, undefined, 'paired');
    t.teardown(() => void lockdownd.pairRecords.delete(host.record.HostID as string));

    t.same(
      await c.request({ Request: 'StartSession', HostID: 'CCCCCCCC-0000-0000-0000-000000000000', SystemBUID: BUID }),
      { Request: 'StartSession', Error: 'InvalidHostID' },
      'unknown HostID',
    );
    t.same(await c.request({ Request: 'GetValue', Key: 'SerialNumber' }), { Key: 'SerialNumber', Request: 'GetValue', Error: 'GetProhibited' });

    for (const round of [1, 2]) {
      const started = await c.request({ Label: 'tap', Request: 'StartSession', HostID: host.record.HostID!, SystemBUID: BUID, ProtocolVersion: '2' });
      t.equal(started.Request, 'StartSession');
      t.equal(started.EnableSessionSSL, true, `round ${round}: EnableSessionSSL`);
      t.match(started.SessionID, /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);
      const info = await c.startTls(host.hostCertPem, host.hostKeyPem);
      t.equal(info.protocol, 'TLSv1.2', `round ${round}: TLS 1.2`);
      t.comment(`round ${round}: ${info.protocol} ${info.cipher}`);
      t.equal(
        info.serverCertPem.replace(/\r/g, ''),
        Buffer.from(host.record.DeviceCertificate as Uint8Array).toString().replace(/\r/g, ''),
        'the device presents the DeviceCertificate',
      );
      const serial = await c.request({ Request: 'GetValue', Key: 'SerialNumber' });
      t.match(serial.Value, /^[0-9A-Z]{10}$/, 'GetValue over TLS: a protected key');
      const intl = await c.request({ Request: 'GetValue', Domain: 'com.apple.international' });
      t.same(intl.Value, { Language: 'en', Locale: 'en_US' }, 'a whole domain');
      t.same(await c.request({ Request: 'StartSession', HostID: host.record.HostID!, SystemBUID: BUID }), { Request: 'StartSession', Error: 'SessionActive' });
      t.same(await c.request({ Request: 'StopSession', SessionID: 'WRONG' }), { Request: 'StopSession', Error: 'InvalidSessionID' });
      t.same(await c.request({ Request: 'StopSession', SessionID: started.SessionID! }), { Request: 'StopSession', Result: 'Success' });
      await c.stopTls();
      t.same(await c.request({ Request: 'QueryType' }), { Request: 'QueryType', Type: 'com.apple.mobile.lockdown' }, `round ${round}: plaintext again`);
      t.same(await c.request({ Request: 'GetValue', Key: 'SerialNumber' }), { Key: 'SerialNumber', Request: 'GetValue', Error: 'GetProhibited' }, 'no session any more');
    }
    const third = await c.request({ Request: 'StartSession', HostID: host.record.HostID!, SystemBUID: BUID });
    t.equal(third.EnableSessionSSL, true);
    await c.startTls(host.hostCertPem, host.hostKeyPem);
    t.same(await c.request({ Request: 'Goodbye' }), { Request: 'Goodbye' }, 'Goodbye answered over TLS');
    await c.waitClosed();
    t.pass('then the connection closes');
  });

  t.test('plaintext after EnableSessionSSL fails the handshake', async (t) => {
    const c = await open();
    t.teardown(() => c.socket.destroy());
    const key = (await c.request({ Request: 'GetValue', Key: 'DevicePublicKey' })).Value as Uint8Array;
    const host = await hostPairRecord(Buffer.from(key).toString(), 'DDDDDDDD-0000-0000-0000-000000000001');
    t.equal((await c.request({ Request: 'Pair', PairRecord: host.record })).Error, undefined, 'paired');
    t.teardown(() => void lockdownd.pairRecords.delete(host.record.HostID as string));
    const started = await c.request({ Request: 'StartSession', HostID: host.record.HostID!, SystemBUID: BUID });
    t.equal(started.EnableSessionSSL, true);
    c.socket.write(lockdownFrame({ Request: 'GetValue', Key: 'SerialNumber' }));
    await c.waitClosed();
    t.pass('the sim closed the connection');

    const fresh = await open();
    t.teardown(() => fresh.socket.destroy());
    t.same(await fresh.request({ Request: 'QueryType' }), { Request: 'QueryType', Type: 'com.apple.mobile.lockdown' }, 'the daemon and the sim still answer');
  });
});
