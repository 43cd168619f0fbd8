// RemoteServiceDiscovery against the simulated phone in direct mode: our
// host role against the sim's RSD port (peer-info with the services from
// lockdownd's table, each Port a string, a fresh UUID per connection);
// RSDCheckin then QueryType/GetValue on the lockdown shim, Marco on the
// heartbeat shim and files through the AFC shim; `tsmuxd rsd` against it,
// and `tsmuxd sim --rsd-port` reporting the port.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { AfcClient } from '../src/afc/client.js';
import { HostConnection } from '../src/xpc/host-connection.js';
import { parsePeerInfo, type PeerInfo } from '../src/xpc/rsd.js';
import { openShimService } from '../src/xpc/rsd-checkin.js';
import { Uuid } from '../src/xpc/values.js';
import { MAIN_JS, runCli, tempDir, waitUntil } from './helpers/daemon-process.js';
import { LockdownConn, lockdownFrame } from './helpers/lockdown-conn.js';
import { startDaemon } from './helpers/usbmuxd-harness.js';

async function peerInfo(port: number, ordering?: 'pymobiledevice3' | 'idevice' | 'go-ios'): Promise<PeerInfo> {
  const host = await HostConnection.open('127.0.0.1', port);
  try {
    await host.handshake(ordering);
    return parsePeerInfo((await host.nextRootMessage()).body!);
  } finally {
    host.close();
  }
}

t.test('the sim in direct mode', async (t) => {
  const setup = await startDaemon(t, { sims: 1, sim: { rsdPort: 0 } });
  const peer = setup.peers[0]!;
  const port = peer.rsd!.port;
  const portOf = (info: PeerInfo, name: string) => info.services.find((s) => s.name === name)?.port;

  t.test('peer-info: properties and the services of lockdownd, ports as strings', async (t) => {
    const info = await peerInfo(port);
    t.equal(info.udid, peer.identity.udid);
    t.equal(info.properties.get('ProductType'), 'iPhone15,3');
    t.equal(info.properties.get('OSVersion'), '17.5');
    t.same(
      info.services.map((s) => s.name).sort(),
      [
        'com.apple.afc.shim.remote',
        'com.apple.mobile.heartbeat.shim.remote',
        'com.apple.mobile.insecure_notification_proxy.shim.remote',
        'com.apple.mobile.lockdown.remote.trusted',
        'com.apple.mobile.notification_proxy.shim.remote',
      ],
      'lockdownd itself and each service of its StartService table',
    );
    t.ok(info.services.every((s) => s.port > 0 && s.entitlement.length > 0), 'each with a port and an Entitlement');
    const again = await peerInfo(port, 'go-ios');
    t.not(again.uuid, info.uuid, 'a new UUID for a new connection');
    t.notOk(Uuid.parse(again.uuid).isZero());
    t.equal(portOf(again, 'com.apple.afc.shim.remote'), portOf(info, 'com.apple.afc.shim.remote'), 'the shims stay on their ports');
    t.same(peer.rsd!.sessionUuids.slice(-2), [info.uuid, again.uuid]);
  });

  t.test('RSDCheckin, then QueryType and GetValue on the lockdown shim', async (t) => {
    const info = await peerInfo(port, 'idevice');
    const socket = await openShimService('127.0.0.1', portOf(info, 'com.apple.mobile.lockdown.remote.trusted')!);
    const lockdown = new LockdownConn(socket);
    socket.resume();
    t.teardown(() => socket.destroy());
    t.same(await lockdown.request({ Label: 'tap', Request: 'QueryType' }), { Request: 'QueryType', Type: 'com.apple.mobile.lockdown' });
    t.same(await lockdown.request({ Request: 'GetValue', Key: 'UniqueDeviceID' }), {
      Request: 'GetValue',
      Key: 'UniqueDeviceID',
      Value: peer.identity.udid,
    });
  });

  t.test('the heartbeat shim: Marco after the checkin', async (t) => {
    const info = await peerInfo(port);
    const socket = await openShimService('127.0.0.1', portOf(info, 'com.apple.mobile.heartbeat.shim.remote')!);
    const heartbeat = new LockdownConn(socket);
    socket.resume();
    t.teardown(() => socket.destroy());
    t.match(await heartbeat.next('Marco'), { Command: 'Marco' });
  });

  t.test('the AFC shim: a file goes up and comes back', async (t) => {
    const info = await peerInfo(port);
    const socket = await openShimService('127.0.0.1', portOf(info, 'com.apple.afc.shim.remote')!);
    t.teardown(() => socket.destroy());
    const afc = new AfcClient(socket);
    socket.resume();
    t.equal((await afc.getDeviceInfo()).model, 'iPhone15,3');
    const data = Buffer.from('over RemoteXPC discovery\n'.repeat(1000));
    await afc.upload('/rsd.txt', data);
    t.same(await afc.download('/rsd.txt'), data);
  });

  t.test('a shim refuses anything but RSDCheckin first', async (t) => {
    const info = await peerInfo(port);
    const socket = connect(portOf(info, 'com.apple.mobile.lockdown.remote.trusted')!, '127.0.0.1');
    await once(socket, 'connect');
    const conn = new LockdownConn(socket);
    t.same(await conn.request({ Request: 'QueryType' }), { Request: 'QueryType', Error: 'InvalidRequest' });
    await conn.waitClosed();
    const raw = connect(portOf(info, 'com.apple.afc.shim.remote')!, '127.0.0.1');
    await once(raw, 'connect');
    raw.write(lockdownFrame(Buffer.from('not a plist')));
    await once(raw, 'close');
    t.pass('a frame that is no plist closes the connection');
    await t.rejects(openShimService('127.0.0.1', port), { code: 'ERSDCHECKIN' }, 'checking in on a port that is no shim (RSD itself) fails typed');
  });

  t.test('tsmuxd rsd prints the peer-info', async (t) => {
    const json = await runCli(['rsd', '--address', `127.0.0.1:${port}`, '--json']);
    t.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { MessageType: string; Properties: Record<string, unknown>; Services: Record<string, { Port: unknown }> };
    t.equal(parsed.MessageType, 'Handshake');
    t.equal(parsed.Properties.UniqueDeviceID, peer.identity.udid);
    t.type(parsed.Services['com.apple.afc.shim.remote']!.Port, 'string', 'Port is a string');
    const text = await runCli(['rsd', '--address', `127.0.0.1:${port}`, '--ordering', 'go-ios']);
    t.equal(text.code, 0, text.stderr);
    t.match(text.stdout, new RegExp(`^UDID ${peer.identity.udid}$`, 'm'));
    t.match(text.stdout, /^com\.apple\.afc\.shim\.remote\s+\d+\s+shim\/lockdown$/m, 'a table row per service');
    const usage = await runCli(['rsd', '--address', 'nowhere']);
    t.equal(usage.code, 2, 'a bad address is a usage error');
  });
});

t.test('tsmuxd rsd against a closed port fails with a message', async (t) => {
  const r = await runCli(['rsd', '--address', '127.0.0.1:1', '--timeout-ms', '2000']);
  t.equal(r.code, 1);
  t.match(r.stderr, /tsmuxd rsd: .*ECONNREFUSED/);
});

t.test('tsmuxd sim --rsd-port reports the port, and tsmuxd rsd reads it', async (t) => {
  const dir = tempDir(t);
  const cable = join(dir, 'cable');
  await startDaemon(t, { sims: 0, cables: [cable] });
  const child = spawn(process.execPath, [MAIN_JS, 'sim', '--cable', cable, '--rsd-port', '0'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const events: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout }).on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>));
  const rsd = await waitUntil(() => events.find((e) => e.event === 'rsd') ?? null, 20_000, "the sim's rsd line");
  const ready = await waitUntil(() => events.find((e) => e.event === 'ready') ?? null, 20_000, "the sim's ready line");
  t.equal(ready.rsdPort, rsd.port, 'ready carries the RSD port too');
  const r = await runCli(['rsd', '--address', rsd.address as string, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal((JSON.parse(r.stdout) as { Properties: { UniqueDeviceID: string } }).Properties.UniqueDeviceID, rsd.udid);
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 0, 'the sim exits cleanly');
});
