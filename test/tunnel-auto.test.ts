// Tunnels that come up by themselves (`--tunnels auto`, issue 22): tsmuxd
// as a child process with two supervised iOS 17.5 phones, and on its cable a
// phone at 16.7 and a spare 17.5 phone in processes of their own. Nobody
// asks for a tunnel here: the daemon brings them up after preflight, never
// asks the 16.7 phone twice while it stays plugged, rebuilds a tunnel that
// the phone resets (with a logged backoff), leaves one stopped on request
// down, and follows unplug and replug. Userspace mode (--tun off): the
// kernel interfaces have their own test (tunnel-tun.test.ts).
import t from 'tap';

import type { TunnelDescription } from '../src/protocol/tunnel-messages.js';
import { assertBuilt, waitUntil } from './helpers/daemon-process.js';
import { request } from './helpers/tunnel-api-client.js';
import { startTunnelWorld, tunnelClient } from './helpers/tunnel-fixture.js';

assertBuilt();

const world = await startTunnelWorld(t, {
  sims: 2,
  daemonArgs: ['--tunnels', 'auto', '--tun', 'off', '--tunneld-api', '127.0.0.1:0', '--go-ios-api', '127.0.0.1:0'],
  standalone: { old: ['--product-version', '16.7'], spare: [] },
});
const client = tunnelClient(world.socketPath);
const log = world.daemon.stderr;
const { old, spare } = world.standalone as Record<'old' | 'spare', (typeof world.standalone)[string]>;
const modern = [...world.phones.map((p) => p.udid), spare!.udid];

const tunnelOf = async (udid: string): Promise<TunnelDescription | undefined> =>
  (await client.listTunnels()).find((x) => x.udid === udid);
const count = (re: RegExp): number => (log.text.match(new RegExp(re.source, 'g')) ?? []).length;
const noTunnelLine = (udid: string) => new RegExp(`${udid}: no automatic tunnel: [^\\n]*16\\.7`);

t.test('every 17.4+ phone gets a tunnel without being asked; the 16.7 phone gets none', async (t) => {
  const started = performance.now();
  await waitUntil(async () => {
    const listed = new Set((await client.listTunnels()).map((x) => x.udid));
    return modern.every((u) => listed.has(u));
  }, 60_000, 'a tunnel for each 17.5 phone');
  t.comment(`3 tunnels up ${(performance.now() - started).toFixed(0)} ms after the phones were listed`);
  const tunnels = await client.listTunnels();
  t.same(tunnels.map((x) => x.udid).sort(), [...modern].sort(), 'exactly the 17.5 phones have tunnels');
  t.ok(tunnels.every((x) => x.mode === 'userspace' && x.interfaceName === undefined), 'userspace mode under --tun off');
  await waitUntil(async () => count(noTunnelLine(old!.udid)) === 1, 30_000, 'the 16.7 phone to be judged');
  t.notOk(await tunnelOf(old!.udid), 'the 16.7 phone has no tunnel');

  // What pymobiledevice3 and go-ios see, with nobody having asked for a tunnel.
  const tunneld = (await log.waitFor(/pymobiledevice3's tunneld API on http:\/\/(\S+)/, 10_000))[1]!;
  const goIos = (await log.waitFor(/go-ios's agent API on http:\/\/(\S+)/, 10_000))[1]!;
  const listed = JSON.parse((await request(tunneld, '/')).body) as Record<string, Array<Record<string, unknown>>>;
  t.same(Object.keys(listed).sort(), [...modern].sort(), "tunneld's GET / lists the three");
  for (const x of tunnels) t.equal(listed[x.udid]?.[0]?.['tunnel-address'], x.serverAddress, `${x.udid}: its tunnel address`);
  const agent = JSON.parse((await request(goIos, '/tunnels')).body) as Array<{ udid: string; address: string; userspaceTun: boolean; userspaceTunPort: number }>;
  t.same(agent.map((x) => x.udid).sort(), [...modern].sort(), "go-ios's /tunnels lists the three");
  t.ok(agent.every((x) => x.userspaceTun && tunnels.some((y) => y.udid === x.udid && y.preamblePort === x.userspaceTunPort)), 'as userspace tunnels with their preamble ports');
});

t.test('the 16.7 phone is not asked again until it is replugged', async (t) => {
  // Plenty of other tunnel traffic happens meanwhile (the next tests); here a pause.
  await new Promise((r) => setTimeout(r, 2000));
  t.equal(count(noTunnelLine(old!.udid)), 1, 'asked once while it stayed plugged');
  old!.command('replug 0 300');
  await waitUntil(async () => count(noTunnelLine(old!.udid)) === 2, 60_000, 'the replugged 16.7 phone to be asked again');
  t.pass('asked again after the replug');
  t.notOk(await tunnelOf(old!.udid), 'and still no tunnel');
});

t.test('a tunnel the phone resets is rebuilt after a logged backoff', async (t) => {
  const before = await tunnelOf(spare!.udid);
  t.ok(before, 'the spare phone has its tunnel');
  const attemptsBefore = count(new RegExp(`tunnel to ${spare!.udid}: it closed: [^\\n]*; attempt \\d+ in`));
  const dropped = performance.now();
  spare!.command('drop-tunnels');
  await waitUntil(async () => {
    const now = await tunnelOf(spare!.udid);
    return now !== undefined && now.preamblePort !== before!.preamblePort;
  }, 60_000, 'the tunnel to come back');
  t.comment(`rebuilt ${(performance.now() - dropped).toFixed(0)} ms after the phone reset it`);
  t.equal(count(new RegExp(`tunnel to ${spare!.udid}: it closed: [^\\n]*; attempt \\d+ in`)), attemptsBefore + 1, 'the retry was logged with its delay');
});

t.test('a tunnel stopped on request stays down until started again', async (t) => {
  await client.stopTunnel(spare!.udid);
  await new Promise((r) => setTimeout(r, 3000));  // longer than the first retry's 1 s
  t.notOk(await tunnelOf(spare!.udid), 'not rebuilt');
  const again = await client.startTunnel(spare!.udid);
  t.equal(again.udid, spare!.udid, 'a start by hand brings it back');
});

t.test('an unplug takes the tunnel down, a replug brings it back', async (t) => {
  const unplugged = performance.now();
  spare!.command('unplug');
  await waitUntil(async () => !(await tunnelOf(spare!.udid)), 30_000, 'the tunnel to go with the phone');
  t.comment(`tunnel gone ${(performance.now() - unplugged).toFixed(0)} ms after the unplug`);
  const tunneld = (await log.waitFor(/pymobiledevice3's tunneld API on http:\/\/(\S+)/, 10_000))[1]!;
  const listedBy = async () => Object.keys(JSON.parse((await request(tunneld, '/')).body) as Record<string, unknown>);
  t.notOk((await listedBy()).includes(spare!.udid), "and from tunneld's GET /");
  const plugged = performance.now();
  spare!.command('plug');
  await waitUntil(async () => (await tunnelOf(spare!.udid)) !== undefined, 60_000, 'a tunnel after the replug');
  t.comment(`tunnel back ${(performance.now() - plugged).toFixed(0)} ms after the plug (preflight included)`);
  t.ok((await listedBy()).includes(spare!.udid), "the replugged phone has its tunnel again, in tunneld's GET / too");
});
