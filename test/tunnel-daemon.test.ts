// The CoreDeviceProxy tunnel's control path, as users drive it: tsmuxd as a
// child process with a supervised `--sim` phone, and on its cable an iOS 17.0
// phone in a process of its own. `tsmuxd tunnel start | ls | stop` through
// the CLI (concurrent starts share one tunnel), `tsmuxd rsd --udid` listing
// the phone's RemoteXPC services through the tunnel, the lockdown shim
// answering QueryType inside it, and every bad input at the daemon's level:
// iOS < 17.4's message, a closed tunnel port, no tunnel, an unknown device,
// a bad SendMSS or Port. The daemon answers on after each.
import t from 'tap';

import { UsbmuxError } from '../src/client/channel.js';
import { LockdownClient } from '../src/lockdown/client.js';
import { parseIpv6, sameSlash64 } from '../src/protocol/ipv6.js';
import { TunnelResult, type TunnelDescription } from '../src/protocol/tunnel-messages.js';
import { rsdCheckin } from '../src/xpc/rsd-checkin.js';
import { assertBuilt, runCli } from './helpers/daemon-process.js';
import { startTunnelWorld, tunnelClient } from './helpers/tunnel-fixture.js';
import { plistRequest, RawClient } from './helpers/usbmuxd-harness.js';

assertBuilt();

const world = await startTunnelWorld(t, { sims: 1, standalone: { old: ['--product-version', '17.0'] } });
const cli = (...args: string[]) => runCli([...args, '-S', world.socketPath], { timeoutMs: 60_000 });
const phone = world.phones[0]!;
const old = world.standalone.old!;
const client = tunnelClient(world.socketPath);

t.test('tunnel start: two at once share one tunnel, with a /64 of its own', async (t) => {
  const [a, b] = await Promise.all([cli('tunnel', 'start', phone.udid, '--json'), cli('tunnel', 'start', phone.udid, '--json')]);
  t.equal(a.code, 0, `exit 0 (stderr: ${a.stderr})`);
  t.equal(b.code, 0, 'the second start too');
  const ta = JSON.parse(a.stdout) as TunnelDescription;
  const tb = JSON.parse(b.stdout) as TunnelDescription;
  t.same(tb, ta, 'the same tunnel, not a second one');
  t.equal(ta.udid, phone.udid);
  t.equal(ta.deviceId, phone.deviceId);
  t.ok(sameSlash64(parseIpv6(ta.address)!, parseIpv6(ta.serverAddress)!), `${ta.address} and ${ta.serverAddress} share a /64`);
  t.match(ta.address, /^fd[0-9a-f]{2}:.*::2$/, 'the host is ::2 of a unique-local /64');
  t.match(ta.serverAddress, /::1$/, 'the phone is ::1');
  t.equal(ta.mtu, 16000, 'the sim grants what the host asks');
  t.equal(ta.sendMss, 1340, 'the send MSS starts at 1340 whatever the MTU');
  t.ok(ta.serverRsdPort >= 1 && ta.serverRsdPort <= 65535, `RSD port ${ta.serverRsdPort}`);
  t.equal(ta.preambleHost, '127.0.0.1');
  const text = await cli('tunnel', 'start', phone.udid);
  t.match(text.stdout, new RegExp(`device address  ${ta.serverAddress}`), 'the text names the addresses');
  t.match(text.stdout, /forward --tunnel/, 'and how to reach ports inside');
  t.match(text.stdout, new RegExp(`preamble +127\\.0\\.0\\.1:${ta.preamblePort}`), "and the preamble listener's endpoint");
  const ls = await cli('tunnel', 'ls', '--json');
  t.same(JSON.parse(ls.stdout), [ta], 'tunnel ls lists it');
  t.match((await cli('tunnel', 'ls')).stdout, new RegExp(`${phone.udid} +${phone.deviceId} +${ta.address.replace(/\./g, '\\.')}`), 'as a table too');
  await world.daemon.stderr.waitFor(new RegExp(`tunnel to ${phone.udid} up: \\[${ta.address}\\]`), 5_000);
});

t.test('rsd --udid lists the services through the tunnel; the lockdown shim answers QueryType in it', async (t) => {
  const r = await cli('rsd', '--udid', phone.udid, '--json');
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr})`);
  const info = JSON.parse(r.stdout) as { MessageType: string; Properties: Record<string, unknown>; Services: Record<string, { Port: string }> };
  t.equal(info.MessageType, 'Handshake');
  t.equal(info.Properties.UniqueDeviceID, phone.udid, "the phone's RSD, reached inside its tunnel");
  const names = Object.keys(info.Services);
  for (const name of ['com.apple.mobile.lockdown.remote.trusted', 'com.apple.mobile.heartbeat.shim.remote', 'com.apple.afc.shim.remote']) {
    t.ok(names.includes(name), `lists ${name}`);
  }
  const text = await cli('rsd', '--udid', phone.udid);
  t.match(text.stdout, /com\.apple\.mobile\.lockdown\.remote\.trusted +\d+ +shim\/lockdown/, 'the text table');

  const port = Number(info.Services['com.apple.mobile.lockdown.remote.trusted']!.Port);
  const socket = await rsdCheckin(await client.tunnelConnect(phone.udid, port));
  const lockdown = new LockdownClient(socket);
  t.equal(await lockdown.queryType(), 'com.apple.mobile.lockdown', 'QueryType through the tunnel and the shim');
  t.equal(await lockdown.getValue('ProductVersion'), '17.5');
  lockdown.destroy();
});

t.test('bad inputs: each gets a clear error and the daemon answers on', async (t) => {
  const r = await cli('tunnel', 'start', old.udid);
  t.equal(r.code, 1, 'iOS 17.0: tunnel start fails');
  t.match(r.stderr, /this device has no CoreDeviceProxy \(iOS 17\.4\+\)[^\n]* \(Result 95\)/, 'and says why');
  await world.daemon.stderr.waitFor(new RegExp(`TunnelStart of ${old.udid} failed: this device has no CoreDeviceProxy`), 5_000);

  const expectResult = async (p: Promise<unknown>, result: number, message: RegExp, what: string) => {
    const err = await p.then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof UsbmuxError, `${what}: refused`);
    t.equal((err as UsbmuxError).result, result, `${what}: Result ${result}`);
    t.match((err as Error).message, message, `${what}: ${(err as Error).message}`);
  };
  const started = Date.now();
  await expectResult(client.tunnelConnect(phone.udid, 1), TunnelResult.CONNREFUSED, /refused|reset/i, 'a closed port inside the tunnel');
  t.ok(Date.now() - started < 5_000, `refused at once (an RST), ${Date.now() - started} ms`);
  await expectResult(client.tunnelConnect(old.udid, 7), TunnelResult.ENOTCONN, /has no tunnel; TunnelStart first/, 'no tunnel');
  await expectResult(client.tunnelConnect('00008101-FFFFFFFFFFFFFFFF', 7), TunnelResult.BADDEV, /no device with UDID/, 'an unknown UDID');
  await expectResult(client.startTunnel(99_999), TunnelResult.BADDEV, /no device with DeviceID 99999/, 'an unknown DeviceID');
  await expectResult(client.startTunnel(old.udid, { sendMss: 100 }), TunnelResult.EINVAL, /SendMSS is an integer in 1220\.\.65475/, 'SendMSS too small');
  await expectResult(client.tunnelConnect(phone.udid, 0), TunnelResult.EINVAL, /Port is not in 1\.\.65535/, 'port 0');
  await expectResult(client.tunnelConnect(phone.udid, 7, '10.0.0.1'), TunnelResult.EINVAL, /not an IPv6 address/, 'an IPv4 address');

  const echo = await client.tunnelConnect(phone.udid, 7);
  echo.write('still here');
  const [back] = (await Promise.race([
    new Promise((resolve) => echo.once('data', (d: Buffer) => resolve([d.toString()]))),
    new Promise((_, reject) => setTimeout(() => reject(new Error('no echo')), 10_000)),
  ])) as [string];
  t.equal(back, 'still here', 'the tunnel still carries streams');
  echo.destroy();
  t.equal((await client.listDevices()).length, 2, 'and the daemon still lists both phones');
});

t.test('TunnelConnect is a Connect: bytes behind the request go with the socket, or are commands if it fails', async (t) => {
  const raw = await RawClient.open(t, world.socketPath);
  const hello = Buffer.from('sent behind the request, before the Result');
  raw.send(Buffer.concat([plistRequest(1, { MessageType: 'TunnelConnect', UDID: phone.udid, Port: 7 }), hello]));
  const { dict } = await raw.readPlist();
  t.same([dict.MessageType, dict.Number], ['Result', 0], 'Result 0');
  t.same(await raw.read(hello.length), hello, 'the echo inside the tunnel got the pipelined bytes');

  const refused = await RawClient.open(t, world.socketPath);
  refused.send(Buffer.concat([
    plistRequest(1, { MessageType: 'TunnelConnect', DeviceID: phone.deviceId, Port: 1 }),
    plistRequest(2, { MessageType: 'ListDevices' }),
  ]));
  const first = await refused.readPlist();
  t.equal(first.dict.Number, TunnelResult.CONNREFUSED, 'a refused TunnelConnect: Result 3');
  t.match(String(first.dict.Error), /./, `with why: ${String(first.dict.Error)}`);
  const second = await refused.readPlist();
  t.equal(second.frame.tag, 2, 'and what came behind it is read as the next request');
  t.ok(Array.isArray(second.dict.DeviceList), 'ListDevices answered');
});

t.test('tunnel stop: gone from ls, and a second stop says there is none', async (t) => {
  const r = await cli('tunnel', 'stop', phone.udid);
  t.equal(r.code, 0, `exit 0 (${r.stderr})`);
  t.match(r.stdout, /stopped/);
  t.same(JSON.parse((await cli('tunnel', 'ls', '--json')).stdout), [], 'no tunnels left');
  const again = await cli('tunnel', 'stop', phone.udid);
  t.equal(again.code, 1);
  t.match(again.stderr, /has no tunnel \(Result 107\)/);
  await world.daemon.stderr.waitFor(new RegExp(`tunnel to ${phone.udid} closed: stopped by client`), 5_000);
  const restarted = await client.startTunnel(phone.udid);
  t.ok(restarted.serverAddress, 'a new tunnel starts after a stop');
  await client.stopTunnel(phone.udid);
});
