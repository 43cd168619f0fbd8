// The client side never needs the native addon (issue 21): every client
// command, and the client library, run in processes where native code cannot
// load (no-addon-preload.mjs: dlopen and any import of src/native/addon.js
// throw and leave a line in a marker file; TSMUXD_NATIVE_DIR points at an
// empty directory besides), against a tsmuxd daemon started normally in a
// process of its own with a supervised simulated phone. The daemon and
// `tsmuxd sim`, which do need it, fail with a message that says so.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import t, { type Test } from 'tap';

import { ECHO_PORT } from '../src/bench/sim-services.js';
import { COMMANDS } from '../src/cli/commands/index.js';
import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { CLIENT_COMMANDS, packageRoot } from '../src/native/native-error.js';
import { echoThrough } from './helpers/echo-once.js';
import { assertBuilt, MAIN_JS, run, runCli, spawnDaemon, tempDir, waitUntil, type DaemonProcess, type RunResult } from './helpers/daemon-process.js';

assertBuilt();

const HOOK = pathToFileURL(join(packageRoot, 'test', 'helpers', 'no-addon-preload.mjs')).href;
/** Tunnel starts and the bench take seconds on a loaded machine. */
const SLOW_MS = 60_000;

const dir = tempDir(t, 'tsmuxd-no-addon-');
const marker = join(dir, 'native-loads.txt');
const emptyNative = join(dir, 'no-native');
mkdirSync(emptyNative);
const socket = join(dir, 'tsmuxd.sock');
const address = `UNIX:${socket}`;
const noAddonEnv: NodeJS.ProcessEnv = {
  ...process.env,
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${HOOK}`.trim(),
  TSMUXD_NATIVE_DIR: emptyNative,
  TSMUXD_NO_ADDON_MARKER: marker,
  USBMUXD_SOCKET_ADDRESS: address,
};
const loads = () => (existsSync(marker) ? readFileSync(marker, 'utf8') : '');
/** The commands run so far, to check that none in `tsmuxd help` was left out. */
const ran = new Set<string>();

/** A client command in a process without native code; it must exit 0 and load nothing. */
async function client(t: Test, args: string[]): Promise<RunResult> {
  ran.add(args[0]!);
  const r = await runCli(args, { env: noAddonEnv, timeoutMs: SLOW_MS });
  t.equal(r.code, 0, `tsmuxd ${args.join(' ')}: exit 0${r.code === 0 ? '' : ` (${r.stderr.trim()})`}`);
  t.equal(loads(), '', `tsmuxd ${args[0]}: no native code loaded`);
  return r;
}

/** A long-running client command without native code, and its first JSON line that matches. */
async function longClient(t: Test, args: string[], first: RegExp): Promise<{ proc: DaemonProcess; line: Record<string, unknown> }> {
  ran.add(args[0]!);
  const proc = spawnDaemon(t, args, noAddonEnv);
  const m = await proc.stdout.waitFor(new RegExp(`^.*${first.source}.*$`, 'm'), SLOW_MS, proc.exited);
  return { proc, line: JSON.parse(m[0]) as Record<string, unknown> };
}

/** SIGTERM ends it cleanly, and nothing native was loaded while it ran. */
async function stopClient(t: Test, proc: DaemonProcess): Promise<void> {
  t.equal((await proc.stop()).code, 0, `tsmuxd ${proc.args[0]}: SIGTERM ends it with exit 0`);
  t.equal(loads(), '', `tsmuxd ${proc.args[0]}: no native code loaded while it ran`);
}

// The daemon, as a user starts it: its own process, the addon, a simulated phone.
// --tun off: as root a tunnel would also get a kernel interface, and the bench's tunnel cases would run through it too.
const daemon = spawnDaemon(t, ['-f', '--no-usb', '-S', socket, '-P', 'NONE', '-C', join(dir, 'lockdown'), '--sim', '1', '--sim-state', join(dir, 'sims'), '--tun', 'off']);
await daemon.ready(SLOW_MS);
const usbmux = new UsbmuxClient({ address: socket, timeoutMs: 20_000 });
const [phone] = await waitUntil(async () => {
  const list = await usbmux.listDevices();
  return list.length === 1 && list;
}, SLOW_MS, 'the simulated phone to be listed');
const udid = phone!.serialNumber;

t.test('the hook itself: the addon cannot load, and the attempt is recorded', async (t) => {
  const own = join(dir, 'control.txt');
  const r = await run(process.execPath, ['--import', HOOK, MAIN_JS, '-f', '-S', join(dir, 'never.sock'), '-P', 'NONE'], {
    env: { ...process.env, TSMUXD_NO_ADDON_MARKER: own },
  });
  t.not(r.code, 0, 'the daemon cannot start under the hook');
  t.match(readFileSync(own, 'utf8'), /import file:.*\/native\/addon\.js/, 'and its import of the addon is on record');
});

t.test('every client command, with the addon unavailable', async (t) => {
  t.match((await client(t, ['help'])).stdout, /usage: tsmuxd/);
  const devices = JSON.parse((await client(t, ['devices', '--json'])).stdout) as Array<{ udid: string }>;
  t.same(devices.map((d) => d.udid), [udid], 'devices: the phone, at USBMUXD_SOCKET_ADDRESS');
  t.match((await client(t, ['devices', '--socket', address])).stdout, udid, 'devices in text');
  const watch = await longClient(t, ['devices', '--watch', '--json'], /"event":"attached"/);
  t.equal(watch.line.udid, udid, 'devices --watch: the attached line');
  await stopClient(t, watch.proc);

  t.equal((await client(t, ['info', udid, 'ProductVersion'])).stdout, '17.5\n', 'info: a value');
  t.match(JSON.parse((await client(t, ['info', udid, '--json'])).stdout), { UniqueDeviceID: udid }, 'info --json: in a session');
  t.match((await client(t, ['validate', udid])).stdout, /SUCCESS: Validated pairing/);

  const started = JSON.parse((await client(t, ['tunnel', 'start', udid, '--json'])).stdout) as { serverAddress: string; serverRsdPort: number };
  t.ok(started.serverAddress && started.serverRsdPort > 0, `tunnel start: device [${started.serverAddress}], RSD port ${started.serverRsdPort}`);
  t.match(JSON.parse((await client(t, ['tunnel', 'ls', '--json'])).stdout), [{ udid }], 'tunnel ls');
  const rsd = JSON.parse((await client(t, ['rsd', '--udid', udid, '--json'])).stdout) as { Services?: Record<string, unknown> };
  t.ok(Object.keys(rsd.Services ?? {}).length > 0, 'rsd --udid: the services through the tunnel');
  const viaTunnel = await longClient(t, ['forward', '--json', '--tunnel', udid, `0:${ECHO_PORT}`], /"event":"listening"/);
  t.equal(await echoThrough(Number(viaTunnel.line.port), 'inside the tunnel'), 'inside the tunnel', 'forward --tunnel: the echo answers');
  await stopClient(t, viaTunnel.proc);

  const plain = await longClient(t, ['forward', '--json', `0:${ECHO_PORT}`], /"event":"listening"/);
  t.equal(await echoThrough(Number(plain.line.port), 'through the mux'), 'through the mux', 'forward: the echo answers');
  await stopClient(t, plain.proc);

  const bench = await client(t, ['bench', '--quick', '--json', '--cases', 'up,rtt,tunnel-up', '--bytes', '1M', '--rtt-count', '10']);
  const lines = bench.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(lines[0], { kind: 'daemon', name: 'tsmuxd', pid: daemon.pid, pidFrom: "the socket's owner", cpuFrom: '/proc/PID/stat', platform: 'linux' }, 'bench: which daemon first');
  t.same(lines.slice(1).map((r) => `${r.kind}${r.tunnel ? ' tunnel' : ''}`), ['throughput', 'rtt', 'throughput tunnel'], 'then its records');
  t.type(lines[1]!.daemonCpuSec, 'number', 'with the daemon CPU from /proc');

  t.match(JSON.parse((await client(t, ['top', '--once', '--json'])).stdout), { devices: [{ udid }] }, 'top --once');
  ran.add('capture');
  const pcapng = join(dir, 'capture.pcapng');
  const capture = spawnDaemon(t, ['capture', '-w', pcapng], noAddonEnv);
  await waitUntil(() => existsSync(pcapng) && statSync(pcapng).size > 0, SLOW_MS, 'the capture to start');
  await stopClient(t, capture);
  t.equal(readFileSync(pcapng).readUInt32LE(0), 0x0a0d0d0a, 'capture: a pcapng file, ended on SIGTERM');
  t.match(JSON.parse((await client(t, ['wifi', 'status', udid, '--json'])).stdout), { udid, enableWifiConnections: false }, 'wifi status');
  t.equal((await client(t, ['remote', 'ls', '--json'])).stdout, '', 'remote ls: no remote hosts');
  t.match((await client(t, ['tunnel', 'stop', udid])).stdout, udid, 'tunnel stop');
  t.match((await client(t, ['unpair', udid])).stdout, /SUCCESS: Unpaired/);
  t.match(JSON.parse((await client(t, ['pair', udid, '--json'])).stdout), { udid, result: 'paired' }, 'pair (the sim trusts at once)');
  t.same(COMMANDS.map((c) => c.name).filter((name) => !ran.has(name)), [], 'every command of tsmuxd help ran (a new one belongs here)');
  t.same(CLIENT_COMMANDS.split(', ').sort(), COMMANDS.map((c) => c.name).sort(), 'the messages name exactly these commands');
  const installScript = readFileSync(join(packageRoot, 'scripts', 'install.mjs'), 'utf8');
  t.ok(installScript.includes(`const CLIENT_COMMANDS = '${CLIENT_COMMANDS}';`), 'and so does scripts/install.mjs');
});

t.test('the client library, imported where the addon cannot load', async (t) => {
  const script = `
    import { UsbmuxClient, NativeError, parseSocketAddress } from ${JSON.stringify(pathToFileURL(join(packageRoot, 'dist', 'src', 'index.js')).href)};
    const usbmux = new UsbmuxClient();
    const devices = await usbmux.listDevices();
    console.log(JSON.stringify({ udids: devices.map((d) => d.serialNumber), buid: await usbmux.readBUID(), nativeError: typeof NativeError, address: parseSocketAddress(process.env.USBMUXD_SOCKET_ADDRESS) }));
  `;
  const r = await run(process.execPath, ['--input-type=module', '-e', script], { env: noAddonEnv, timeoutMs: SLOW_MS });
  t.equal(r.code, 0, `exit 0 ${r.stderr}`);
  t.match(JSON.parse(r.stdout), { udids: [udid], buid: /^[0-9A-F-]{36}$/, nativeError: 'function', address: { kind: 'unix', path: socket } });
  t.equal(loads(), '', 'no native code loaded');
});

t.test('the daemon, sim and version where the addon is missing', async (t) => {
  const env = { ...process.env, TSMUXD_NATIVE_DIR: emptyNative };
  const d = await runCli(['-f', '-S', join(dir, 'other.sock'), '-P', 'NONE', '-C', join(dir, 'other')], { env });
  t.equal(d.code, 1, 'the daemon exits 1');
  t.match(d.stderr, /^tsmuxd: the native addon is not available for linux-x64 \(No native build was found.*\)\. The daemon and 'tsmuxd sim' need it: build it with 'npm rebuild tsmuxd --build-from-source'.*The client commands \(devices, info, .*\) and the client library work without it\.\n$/s);
  const s = await runCli(['sim', '--cable', join(dir, 'no.cable')], { env });
  t.equal(s.code, 1, 'tsmuxd sim exits 1');
  t.match(s.stderr, /native addon is not available/);
  const v = await runCli(['version'], { env });
  t.equal(v.code, 0, 'version still answers');
  t.match(v.stdout, /^tsmuxd \d+\.\d+\.\d+ \(node v[\d.]+, no native addon: client commands only\)$/m);
});
