// The simulated phone's lockdownd (device port 62078), first slice: Debian's
// ideviceinfo in simple (no pairing) mode against an in-process daemon with
// one sim, and the plaintext protocol spoken directly through the client.
import t from 'tap';

import { UsbmuxClient } from '../src/client/index.js';
import { isPlistDict, toXml, type PlistDict } from '../src/protocol/plist-codec.js';
import { FrameReader, FramingError, MAX_FRAME } from '../src/lockdown/framing.js';
import { PRE_SESSION_KEYS } from '../src/sim/lockdown/values.js';
import { simIdentity } from '../src/sim/identity.js';
import { findOnPath, run } from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { LockdownConn, lockdownFrame } from './helpers/lockdown-conn.js';
import { SLOW, startDaemon, within } from './helpers/usbmuxd-harness.js';

const LOCKDOWN = 62078;



t.test('identity and framing units', async (t) => {
  const id = simIdentity('00008101000000000000ABCD');
  t.equal(id.udid, '00008101-000000000000ABCD', 'UDID uses the dash rule');
  t.equal(id.uniqueChipId, 0xabcd, 'ECID is the part after the dash');
  t.equal(id.productVersion, '17.5');
  t.match(id.wifiAddress, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  t.equal(simIdentity('00008101000000000000ABCD').serialNumber, id.serialNumber, 'deterministic');
  t.equal(simIdentity('0123456789abcdef0123456789abcdef01234567').udid, '0123456789abcdef0123456789abcdef01234567');

  const r = new FrameReader();
  const f = lockdownFrame({ Request: 'QueryType' });
  t.same(r.push(f.subarray(0, 3)), []);
  t.same(r.push(f.subarray(3, 10)), []);
  const frames = r.push(Buffer.concat([f.subarray(10), f]));
  t.equal(frames.length, 2, 'split and coalesced frames both come out whole');
  const big = Buffer.alloc(4);
  big.writeUInt32BE(MAX_FRAME + 1, 0);
  t.throws(() => new FrameReader().push(big), FramingError);
  t.throws(() => new FrameReader().push(Buffer.alloc(4)), FramingError, 'zero length is refused');
});

t.test('lockdownd through the daemon', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [device] = await client.listDevices();
  const udid = device!.serialNumber;
  t.match(udid, /^[0-9A-F]{8}-[0-9A-F]{16}$/, 'the sim has a new-style UDID');
  const open = async () => new LockdownConn(await client.connect(udid, LOCKDOWN));

  t.test('QueryType', async (t) => {
    const c = await open();
    t.teardown(() => c.socket.destroy());
    t.same(await c.request({ Label: 'tap', Request: 'QueryType' }), {
      Request: 'QueryType',
      Type: 'com.apple.mobile.lockdown',
    });
  });

  t.test('GetValue before a session', async (t) => {
    const c = await open();
    t.teardown(() => c.socket.destroy());
    t.same(await c.request({ Request: 'GetValue', Key: 'ProductVersion' }), {
      Key: 'ProductVersion',
      Request: 'GetValue',
      Value: '17.5',
    });
    const all = await c.request({ Request: 'GetValue', Label: 'tap', ProtocolVersion: 2 });
    t.equal(all.Request, 'GetValue');
    const value = all.Value as PlistDict;
    t.ok(isPlistDict(value), 'no key: the whole pre-session domain');
    t.same(Object.keys(value).sort(), [...PRE_SESSION_KEYS].sort(), 'exactly the allow-list');
    t.equal(value.UniqueDeviceID, udid);
    t.match(Buffer.from(value.DevicePublicKey as Uint8Array).toString(), /^-----BEGIN RSA PUBLIC KEY-----\n/);
    t.same(await c.request({ Request: 'GetValue', Key: 'SerialNumber' }), {
      Key: 'SerialNumber',
      Request: 'GetValue',
      Error: 'GetProhibited',
    }, 'a protected key is refused');
    t.same(await c.request({ Request: 'GetValue', Key: 'NoSuchKey' }), {
      Key: 'NoSuchKey',
      Request: 'GetValue',
      Error: 'MissingValue',
    });
    t.same(await c.request({ Request: 'GetValue', Domain: 'com.apple.international', Key: 'Language' }), {
      Domain: 'com.apple.international',
      Key: 'Language',
      Request: 'GetValue',
      Error: 'GetProhibited',
    });
  });

  t.test('SetValue, StartSession and other verbs without pairing', async (t) => {
    const c = await open();
    t.teardown(() => c.socket.destroy());
    const buid = '7C7306A8-F205-4B75-933A-F86275817DD9';
    t.same(await c.request({ Request: 'SetValue', Key: 'UntrustedHostBUID', Value: buid }), {
      Key: 'UntrustedHostBUID',
      Request: 'SetValue',
    });
    t.equal(setup.peers[0]!.lockdownd.untrustedHostBuid, buid, 'stored in memory');
    t.same(await c.request({ Request: 'SetValue', Key: 'DeviceName', Value: 'x' }), {
      Key: 'DeviceName',
      Request: 'SetValue',
      Error: 'SessionInactive',
    });
    t.same(
      await c.request({ Label: 'tap', Request: 'StartSession', HostID: '6D5386C0-FD2A-EB4D-8343-0EE11FE13890', SystemBUID: buid, ProtocolVersion: '2' }),
      { Request: 'StartSession', Error: 'InvalidHostID' },
    );
    t.same(await c.request({ Request: 'StartSession' }), { Request: 'StartSession', Error: 'MissingHostID' });
    t.same(await c.request({ Request: 'StartService', Service: 'com.apple.afc' }), {
      Request: 'StartService',
      Error: 'SessionInactive',
    });
    t.same(await c.request({ Request: 'StopSession', SessionID: 'X' }), { Request: 'StopSession', Error: 'InvalidSessionID' });
    const unknown = await c.request({ Request: 'NoSuchVerb' });
    t.equal(unknown.Request, 'NoSuchVerb', 'unknown verb echoed');
    t.type(unknown.Error, 'string', 'unknown verb gets an Error');
    t.same(await c.request({ Request: 'QueryType' }), { Request: 'QueryType', Type: 'com.apple.mobile.lockdown' }, 'still answering');
  });

  t.test('binary plist requests are accepted', async (t) => {
    // A hand-written bplist00 for {Request: "QueryType"}.
    const objects = [
      Buffer.from([0xd1, 0x01, 0x02]), // dict, 1 entry: key ref 1, value ref 2
      Buffer.concat([Buffer.from([0x57]), Buffer.from('Request')]),
      Buffer.concat([Buffer.from([0x59]), Buffer.from('QueryType')]),
    ];
    const head = Buffer.from('bplist00', 'latin1');
    const offsets: number[] = [];
    let pos = head.length;
    for (const o of objects) {
      offsets.push(pos);
      pos += o.length;
    }
    const table = Buffer.from(offsets);
    const trailer = Buffer.alloc(32);
    trailer[6] = 1; // offset size
    trailer[7] = 1; // object ref size
    trailer.writeBigUInt64BE(BigInt(objects.length), 8);
    trailer.writeBigUInt64BE(0n, 16);
    trailer.writeBigUInt64BE(BigInt(pos), 24);
    const body = Buffer.concat([head, ...objects, table, trailer]);
    const c = await open();
    t.teardown(() => c.socket.destroy());
    c.socket.write(lockdownFrame(body));
    t.same(await within(c.next(), SLOW, 'QueryType reply'), { Request: 'QueryType', Type: 'com.apple.mobile.lockdown' });
  });

  t.test('bad input closes only that connection', async (t) => {
    const keep = await open();
    t.teardown(() => keep.socket.destroy());
    t.equal((await keep.request({ Request: 'QueryType' })).Type, 'com.apple.mobile.lockdown');

    const oversized = await open();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(0x7fffffff, 0);
    oversized.socket.write(head);
    await oversized.waitClosed();
    t.pass('oversized length frame: connection closed');

    const garbage = await open();
    garbage.socket.write(lockdownFrame(Buffer.from('this is not a plist')));
    await garbage.waitClosed();
    t.pass('unparseable body: connection closed');

    const notDict = await open();
    notDict.socket.write(lockdownFrame(Buffer.from(toXml(['QueryType']))));
    await notDict.waitClosed();
    t.pass('array instead of dict: connection closed');

    t.equal((await keep.request({ Request: 'GetValue', Key: 'UniqueDeviceID' })).Value, udid, 'an open connection still answers');
    const fresh = await open();
    t.teardown(() => fresh.socket.destroy());
    t.equal((await fresh.request({ Request: 'QueryType' })).Type, 'com.apple.mobile.lockdown', 'new connections still answered');
  });

  t.test("Debian's ideviceinfo (simple mode, no pairing)", { skip: requireTool('ideviceinfo', 'libimobiledevice-utils') }, async (t) => {
    const tool = findOnPath('ideviceinfo')!;
    const env = { ...process.env, USBMUXD_SOCKET_ADDRESS: setup.address };
    const all = await run(tool, ['-s', '-u', udid], { env, timeoutMs: SLOW });
    t.comment(`ideviceinfo -s -u ${udid}: exit ${all.code}\n${all.stdout}${all.stderr}`);
    t.equal(all.code, 0, 'exit 0');
    t.match(all.stdout, /^ProductVersion: 17\.5$/m);
    t.match(all.stdout, new RegExp(`^UniqueDeviceID: ${udid}$`, 'm'));
    t.match(all.stdout, /^DeviceClass: iPhone$/m);
    t.notMatch(all.stdout, /^SerialNumber:/m, 'nothing beyond the allow-list');

    const one = await run(tool, ['-s', '-u', udid, '-k', 'ProductVersion'], { env, timeoutMs: SLOW });
    t.comment(`ideviceinfo -s -u ${udid} -k ProductVersion: exit ${one.code} ${JSON.stringify(one.stdout)} ${JSON.stringify(one.stderr)}`);
    t.equal(one.code, 0, 'exit 0');
    t.equal(one.stdout, '17.5\n');

    const uid = await run(tool, ['-s', '-u', udid, '-k', 'UniqueDeviceID'], { env, timeoutMs: SLOW });
    t.equal(uid.code, 0);
    t.equal(uid.stdout, `${udid}\n`);
  });
});
