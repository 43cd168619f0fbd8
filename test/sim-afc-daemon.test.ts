// com.apple.afc as a host reaches it on a phone: through the daemon, pair
// with the simulated phone's lockdownd, StartSession with the in-band TLS,
// StartService com.apple.afc, then a new usbmux connection to the port it
// returned (plaintext, as AFC is on a phone) and 16 MiB up and down with a
// hash check.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import tls from 'node:tls';


import { AfcClient } from '../src/afc/client.js';
import { UsbmuxClient } from '../src/client/index.js';
import type { PlistDict } from '../src/protocol/plist-codec.js';
import { hostPairRecord, TEST_BUID as BUID } from './helpers/host-pairing.js';
import { FrameQueue, lockdownFrame } from './helpers/lockdown-conn.js';
import { SLOW, startDaemon, within } from './helpers/usbmuxd-harness.js';

const LOCKDOWN = 62078;
const MiB = 1024 * 1024;

t.test('AFC through the daemon: pair, session, StartService, 16 MiB', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const usbmux = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [device] = await usbmux.listDevices();
  const udid = device!.serialNumber;

  // Plaintext lockdown up to StartSession.
  const raw = await usbmux.connect(udid, LOCKDOWN);
  t.teardown(() => raw.destroy());
  raw.on('error', () => {});
  const plain = new FrameQueue();
  const onPlain = (d: Buffer) => plain.push(d);
  raw.on('data', onPlain);
  raw.on('close', () => plain.close());
  const ask = async (dict: PlistDict): Promise<PlistDict> => {
    raw.write(lockdownFrame(dict));
    return within(plain.next(), SLOW, `reply to ${String(dict.Request)}`);
  };
  const key = (await ask({ Request: 'GetValue', Key: 'DevicePublicKey' })).Value as Uint8Array;
  const host = await hostPairRecord(Buffer.from(key).toString());
  const paired = await ask({ Request: 'Pair', ProtocolVersion: '2', PairRecord: host.record });
  t.equal(paired.Error, undefined, 'paired');
  const session = await ask({ Label: 'tap', Request: 'StartSession', HostID: host.record.HostID!, SystemBUID: BUID, ProtocolVersion: '2' });
  t.equal(session.EnableSessionSSL, true, 'StartSession asks for TLS');

  // The session's TLS on the same socket; the device is the TLS server.
  raw.off('data', onPlain);
  const secure = tls.connect({ socket: raw, cert: host.hostCertPem, key: host.hostKeyPem, rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
  secure.on('error', () => {});
  await within(
    new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    }),
    SLOW,
    'the session TLS handshake',
  );
  const frames = new FrameQueue();
  secure.on('data', (d: Buffer) => frames.push(d));
  secure.write(lockdownFrame({ Label: 'tap', Request: 'StartService', Service: 'com.apple.afc' }));
  const started = await within(frames.next(), SLOW, 'the StartService reply');
  t.comment(`StartService com.apple.afc: ${JSON.stringify(started)}`);
  t.match(started, { Request: 'StartService', Service: 'com.apple.afc' });
  t.equal(started.Error, undefined, 'no error');
  t.notOk(started.EnableServiceSSL, 'AFC is plaintext');
  t.type(started.Port, 'number');

  // The service: a new usbmux connection to the port StartService gave.
  const afc = new AfcClient(await usbmux.connect(udid, started.Port as number));
  t.teardown(() => afc.destroy());
  t.equal((await afc.getDeviceInfo()).model, 'iPhone15,3', 'GET_DEVINFO answers');
  const payload = randomBytes(16 * MiB);
  await afc.makeDirectory('/Downloads');
  let startedAt = performance.now();
  t.equal(await afc.upload('/Downloads/through-daemon.bin', payload), 16 * MiB, 'uploaded');
  const upMs = performance.now() - startedAt;
  startedAt = performance.now();
  const back = await afc.download('/Downloads/through-daemon.bin');
  const downMs = performance.now() - startedAt;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  t.equal(sha(back), sha(payload), 'SHA-256 of the download matches the upload');
  t.comment(`16 MiB through tsmuxd and the virtual cable: upload ${upMs.toFixed(0)} ms, download ${downMs.toFixed(0)} ms`);
  t.match(await afc.getFileInfo('/Downloads/through-daemon.bin'), { type: 'S_IFREG', size: 16 * MiB });
  await afc.removePath('/Downloads', { recursive: true });
  t.same(await afc.readDirectory('/'), [], 'cleaned up');
  secure.destroy();
});
