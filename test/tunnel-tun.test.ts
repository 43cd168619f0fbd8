// Tunnels on kernel interfaces (`--tun auto`, issue 22): run as root, the
// daemon gives each automatic tunnel a TUN interface with the host's tunnel
// address, so plain node:net sockets reach the phone through the kernel:
// the RSD handshake with our XPC host, 64 MiB each way to the sim's sink
// and from its source (SHA-256 at both ends), beside the same transfer
// through the daemon's own stack. Two daemons at once get interfaces of
// their own, and an unplug removes the interface (a replug brings it back).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { networkInterfaces } from 'node:os';

import t, { type Test } from 'tap';

import type { BenchRecord } from '../src/bench/records.js';
import { summarize } from '../src/bench/report.js';
import { runBench } from '../src/bench/run.js';
import { downloadVerified, uploadVerified, type VerifiedResult } from '../src/bench/verified.js';
import { SINK_PORT, SOURCE_PORT } from '../src/protocol/sim-ports.js';
import type { TunnelDescription } from '../src/protocol/tunnel-messages.js';
import { HostConnection } from '../src/xpc/host-connection.js';
import { parsePeerInfo } from '../src/xpc/rsd.js';
import { assertBuilt, findOnPath, spawnDaemon, tempDir, waitUntil } from './helpers/daemon-process.js';
import { scaledForSanitizers } from './helpers/sanitizers.js';
import { requireTool } from './helpers/system-tools.js';
import { mbPerSecond, MiB, startTunnelWorld, tunnelClient, type TunnelWorld } from './helpers/tunnel-fixture.js';
import { UsbmuxClient } from '../src/client/usbmux-client.js';

assertBuilt();

const EACH_WAY = scaledForSanitizers(64 * MiB, 16);
const root = process.getuid?.() === 0;
if (!root || !existsSync('/dev/net/tun')) {
  t.plan(0, `kernel tunnel interfaces need root (CAP_NET_ADMIN) and /dev/net/tun${root ? '' : '; run as root'}`);
  process.exit(0);
}

const fdsOf = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const ourInterfaces = (): string[] => Object.keys(networkInterfaces()).filter((n) => /^tsmux\d+$/.test(n));
const hasAddress = (name: string, address: string): boolean =>
  (networkInterfaces()[name] ?? []).some((a) => a.family === 'IPv6' && a.address === address);

async function tunOf(world: TunnelWorld, udid: string): Promise<TunnelDescription | undefined> {
  return (await tunnelClient(world.socketPath).listTunnels()).find((x) => x.udid === udid && x.mode === 'tun');
}

function connectKernel(t: TunnelDescription, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: t.serverAddress, port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function intact(t: Test, r: VerifiedResult, what: string): void {
  t.equal(r.local, r.remote, `${what}: SHA-256 equal at both ends`);
  t.comment(`${what}: ${(r.bytes / MiB).toFixed(0)} MiB at ${mbPerSecond(r.bytes, r.ms)}`);
}

const world = await startTunnelWorld(t, {
  sims: 1,
  daemonArgs: ['--tunnels', 'auto', '--tun', 'auto'],
  standalone: { spare: [] },
});
const phone = world.phones[0]!;
const spare = world.standalone.spare!;
const tunnel = await waitUntil(() => tunOf(world, phone.udid), 60_000, 'the phone\'s tunnel on a kernel interface');

t.test('the interface has the host address, the /64 and an MTU that keeps the MSS at the send MSS', async (t) => {
  const name = tunnel.interfaceName!;
  t.match(name, /^tsmux\d+$/, `named ${name}`);
  const entry = (networkInterfaces()[name] ?? []).find((a) => a.family === 'IPv6' && a.address === tunnel.address);
  t.ok(entry, `${name} has ${tunnel.address}`);
  t.equal(entry?.netmask, 'ffff:ffff:ffff:ffff::', 'with the /64');
  t.equal(Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8')), tunnel.sendMss + 60, `MTU ${tunnel.sendMss + 60}: the kernel's MSS is the send MSS`);
});

t.test('a plain node:net socket completes the RSD handshake through the kernel', async (t) => {
  const connection = await HostConnection.open(tunnel.serverAddress, tunnel.serverRsdPort, 10_000);
  try {
    await connection.handshake();
    const info = parsePeerInfo((await connection.nextRootMessage()).body!);
    t.equal(info.udid, phone.udid, 'the phone\'s RSD answers with its UDID');
    t.ok(info.services.length > 0, `${info.services.length} services listed`);
  } finally {
    connection.socket.destroy();
  }
});

t.test('64 MiB each way through the kernel, and through the daemon\'s own stack', async (t) => {
  const up = await connectKernel(tunnel, SINK_PORT);
  intact(t, await uploadVerified(up, EACH_WAY, 1), 'kernel TCP to the sink');
  up.destroy();
  const down = await connectKernel(tunnel, SOURCE_PORT);
  intact(t, await downloadVerified(down, EACH_WAY), 'kernel TCP from the source');
  down.destroy();
  const client = tunnelClient(world.socketPath);
  const upUser = await client.tunnelConnect(phone.udid, SINK_PORT);
  intact(t, await uploadVerified(upUser, EACH_WAY, 2), 'userspace (TunnelConnect) to the sink');
  upUser.destroy();
  const downUser = await client.tunnelConnect(phone.udid, SOURCE_PORT);
  intact(t, await downloadVerified(downUser, EACH_WAY), 'userspace (TunnelConnect) from the source');
  downUser.destroy();
});

t.test('two daemons at once make interfaces of their own', async (t) => {
  const other = await startTunnelWorld(t, { sims: 1, daemonArgs: ['--tunnels', 'auto', '--tun', 'auto'] });
  const theirs = await waitUntil(() => tunOf(other, other.phones[0]!.udid), 60_000, 'the second daemon\'s tunnel');
  t.not(theirs.interfaceName, tunnel.interfaceName, `${tunnel.interfaceName} and ${theirs.interfaceName}`);
  t.ok(hasAddress(tunnel.interfaceName!, tunnel.address), 'the first keeps its address');
  t.ok(hasAddress(theirs.interfaceName!, theirs.address), 'the second has its own');
  const s = await connectKernel(theirs, SINK_PORT);
  intact(t, await uploadVerified(s, 4 * MiB, 3), 'the second daemon\'s phone through its interface');
  s.destroy();
});

t.test('an unplug mid-transfer removes the interface; a replug brings one back', async (t) => {
  const before = await waitUntil(() => tunOf(world, spare.udid), 60_000, 'the spare phone\'s tunnel');
  const name = before.interfaceName!;
  const fds = fdsOf(world.daemon.pid);
  // A kernel TCP upload under way when the cable goes: it must end, not hang.
  const upload = await connectKernel(before, SINK_PORT);
  upload.on('error', () => {});
  let sent = 0;
  const ended = new Promise<void>((resolve) => upload.once('close', () => resolve()));
  const transfer = uploadVerified(upload, 1024 * MiB, 5, (n) => (sent += n)).catch((err: Error) => err);
  await waitUntil(async () => sent >= 4 * MiB || upload.destroyed, 30_000, 'the upload to be under way');
  const unplugged = performance.now();
  spare.command('unplug');
  await waitUntil(async () => !networkInterfaces()[name], 30_000, `${name} to go`);
  t.comment(`${name} gone ${(performance.now() - unplugged).toFixed(0)} ms after the unplug`);
  t.notOk(await tunOf(world, spare.udid), 'and the tunnel with it');
  // The kernel resets the socket once its address is gone; a peer that no
  // longer answers would take TCP's retransmission timeout instead.
  upload.destroy();
  await ended;
  t.ok((await transfer) instanceof Error, 'the upload ended with an error, not a digest');
  t.comment(`${(sent / MiB).toFixed(0)} MiB were sent before the unplug`);
  await waitUntil(async () => fdsOf(world.daemon.pid) <= fds, 10_000, 'the daemon\'s fds to settle');
  t.ok(fdsOf(world.daemon.pid) <= fds, `daemon fds ${fds} before the transfer, ${fdsOf(world.daemon.pid)} after the unplug`);
  const plugged = performance.now();
  spare.command('plug');
  const after = await waitUntil(() => tunOf(world, spare.udid), 60_000, 'a tunnel after the replug');
  const listedAt = performance.now();
  t.ok(hasAddress(after.interfaceName!, after.address), `${after.interfaceName} up with ${after.address}`);
  const rsd = await HostConnection.open(after.serverAddress, after.serverRsdPort, 10_000);
  try {
    await rsd.handshake();
    t.equal(parsePeerInfo((await rsd.nextRootMessage()).body!).udid, spare.udid, 'its RSD answers through the new interface');
  } finally {
    rsd.socket.destroy();
  }
  t.comment(`interface back ${(listedAt - plugged).toFixed(0)} ms after the plug (preflight included), RSD handshake done at ${(performance.now() - plugged).toFixed(0)} ms`);
});


t.test('20 tunnels up and down in a loop leak no fd and no interface', async (t) => {
  const client = tunnelClient(world.socketPath);
  await client.stopTunnel(phone.udid);
  await waitUntil(async () => !(await tunOf(world, phone.udid)), 10_000, 'the tunnel to stop');
  const fds = fdsOf(world.daemon.pid);
  const interfaces = ourInterfaces().length;
  const started = performance.now();
  for (let i = 0; i < 20; i++) {
    const up = await client.startTunnel(phone.udid);
    if (up.mode !== 'tun') t.fail(`cycle ${i}: ${up.mode} mode`);
    await client.stopTunnel(phone.udid);
  }
  t.comment(`20 cycles in ${(performance.now() - started).toFixed(0)} ms`);
  await waitUntil(async () => fdsOf(world.daemon.pid) <= fds && ourInterfaces().length === interfaces, 10_000, 'the fds and interfaces to settle');
  t.ok(fdsOf(world.daemon.pid) <= fds, `daemon fds ${fds} before, ${fdsOf(world.daemon.pid)} after`);
  t.equal(ourInterfaces().length, interfaces, 'no interface left behind');
  const back = await client.startTunnel(phone.udid);
  t.equal(back.mode, 'tun', 'and one more comes up');
});

t.test('without CAP_NET_ADMIN the tunnel runs in userspace, and says so once', { skip: requireTool('setpriv', 'util-linux') }, async (t) => {
  const setpriv = findOnPath('setpriv')!;
  const dir = tempDir(t, 'tsmuxd-nocap-');
  const socketPath = join(dir, 'sock');
  const daemon = spawnDaemon(
    t,
    ['-f', '-v', '--no-usb', '-S', socketPath, '-P', join(dir, 'pid'), '-C', join(dir, 'lockdown'), '--sim', '2', '--tunnels', 'auto', '--tun', 'auto'],
    process.env,
    [setpriv, '--bounding-set=-net_admin', '--inh-caps=-net_admin', '--'],
  );
  await daemon.ready(60_000);
  const client = new UsbmuxClient({ address: { kind: 'unix', path: socketPath }, timeoutMs: 30_000 });
  const tunnels = await waitUntil(async () => {
    const list = await client.listTunnels();
    return list.length === 2 && list;
  }, 60_000, 'both phones\' tunnels');
  t.ok(tunnels.every((x) => x.mode === 'userspace'), 'both in userspace mode');
  const said = daemon.stderr.text.match(/tunnels run in userspace only: no kernel interface \([^\n]*Operation not permitted/g) ?? [];
  t.equal(said.length, 1, 'one log line for two tunnels, naming the reason');
  const s = await client.tunnelConnect(tunnels[0]!.udid, SINK_PORT);
  intact(t, await uploadVerified(s, 4 * MiB, 4), 'userspace fallback to the sink');
  s.destroy();
});

t.test("tsmuxd bench's tunnel cases also run through the kernel interface", async (t) => {
  const records: BenchRecord[] = [];
  await runBench({
    address: { kind: 'unix', path: world.socketPath },
    udid: phone.udid,
    bytes: 4 * MiB,
    repeats: 1,
    cases: new Set(['tunnel-up', 'tunnel-down', 'tunnel-rtt']),
    parallel: [],
    rttCount: 20,
    connectSeconds: 0.3,
    connectConcurrency: 1,
    idleConnections: 0,
    daemonPid: world.daemon.pid,
    emit: (r) => records.push(r),
    log: () => {},
  });
  const kernel = summarize(records).filter((r) => r.name.startsWith('tunnel (kernel TUN)'));
  t.same(kernel.map((r) => r.name), ['tunnel (kernel TUN): to device, 1 conn', 'tunnel (kernel TUN): from device, 1 conn', 'tunnel (kernel TUN): 64 B echo RTT'], 'the kernel rows beside the userspace ones');
  for (const r of summarize(records).filter((x) => x.name.startsWith('tunnel'))) t.comment(`${r.name}: ${r.value.median.toFixed(r.unit.includes('ms') ? 3 : 1)} ${r.unit}`);
});
