// The package as a user without the addon gets it (issue 21): `npm pack`,
// the prebuilds taken out of the tarball, `npm install` of it into a scratch
// project with a PATH that holds only node and sh (no cc, gcc, g++, make,
// cmake, python3, pkg-config). The install must exit 0 and print its one
// line; then the installed `tsmuxd` runs the client commands, and the
// library imports, against a tsmuxd daemon started from this repo, while
// the installed daemon and 'tsmuxd/daemon' refuse with a clear message.
// Dependencies come from npm's cache or the registry (--prefer-offline).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import t, { type Test } from 'tap';

import { ECHO_PORT } from '../src/bench/sim-services.js';
import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { packageRoot } from '../src/native/native-error.js';
import { echoThrough } from './helpers/echo-once.js';
import { assertBuilt, findOnPath, killOnExit, OutputWatch, run, spawnDaemon, tempDir, waitUntil, type RunResult } from './helpers/daemon-process.js';

assertBuilt();

/** npm install of a dozen small packages from the cache; the registry when it is cold. */
const NPM_TIMEOUT_MS = 180_000;
const SLOW_MS = 60_000;
const NETWORK_ERROR = /E(?:NOTFOUND|AI_AGAIN|TIMEDOUT|CONNREFUSED|CONNRESET|NETUNREACH)|network/;

/** The npm that runs `npm test` (npm_execpath), else the one on PATH, as node + its cli script. */
function npmCli(): string | undefined {
  const fromNpm = process.env.npm_execpath;
  if (fromNpm && /\.[cm]?js$/.test(fromNpm)) return fromNpm;
  const onPath = findOnPath('npm');
  return onPath ? realpathSync(onPath) : undefined;
}

/**
 * This environment without npm's, tap's and the compilers' variables, on
 * `path`; and without the sanitizer runtime of test:asan, which is for our
 * addon, not for npm or the `usb` package's install (its prebuild does not
 * load with ASan preloaded, and it then tries to compile).
 */
function cleanEnv(path: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|NODE_OPTIONS$|CC$|CXX$|PYTHON$|USBMUXD_SOCKET_ADDRESS$|TSMUXD_|LD_PRELOAD$|ASAN_OPTIONS$|UBSAN_OPTIONS$)/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, PATH: path };
}

const cli = npmCli() ?? '';
const tar = findOnPath('tar') ?? '';
const missingTools = [cli ? '' : 'npm', tar ? '' : 'tar'].filter(Boolean);

const work = tempDir(t, 'tsmuxd-scratch-');
const bin = join(work, 'bin');
mkdirSync(bin);
// npm runs scripts with `sh -c`; #!/usr/bin/env node finds node here. Nothing else.
symlinkSync(process.execPath, join(bin, 'node'));
symlinkSync(realpathSync('/bin/sh'), join(bin, 'sh'));
const bareEnv = cleanEnv(bin);
const npm = (args: string[], cwd: string, timeoutMs = NPM_TIMEOUT_MS) => run(process.execPath, [cli, ...args], { cwd, env: bareEnv, timeoutMs });
/** Set once the install succeeded; the later tests skip without it. */

const app = join(work, 'app');
const installed = join(app, 'node_modules', 'tsmuxd');
const TSMUXD = join(app, 'node_modules', '.bin', 'tsmuxd');
let install: RunResult | undefined;
let fullTarball = '';

t.test('npm pack, prebuilds removed, npm install with no compiler on PATH', async (t) => {
  if (missingTools.length) return void t.pass(`skipped: ${missingTools.join(' and ')} not found on PATH`);
  const started = Date.now();
  const packed = await run(process.execPath, [cli, 'pack', '--ignore-scripts', '--json', '--pack-destination', work], {
    cwd: packageRoot,
    env: cleanEnv(process.env.PATH ?? ''),
    timeoutMs: SLOW_MS,
  });
  t.equal(packed.code, 0, `npm pack ${packed.stderr}`);
  const [{ filename }] = JSON.parse(packed.stdout) as Array<{ filename: string }>;
  fullTarball = join(work, filename!);
  const unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  t.equal((await run(tar, ['xzf', join(work, filename!), '-C', unpacked])).code, 0, 'unpacked');
  rmSync(join(unpacked, 'package', 'prebuilds'), { recursive: true });
  const tarball = join(work, 'tsmuxd-no-prebuilds.tgz');
  t.equal((await run(tar, ['czf', tarball, '-C', unpacked, 'package'])).code, 0, 'packed again without prebuilds/');

  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), '{ "name": "scratch", "private": true }\n');
  t.same(readdirSync(bin).sort(), ['node', 'sh'], "the install's PATH holds node and sh: no cc, gcc, g++, make or cmake");
  install = await npm(['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', tarball], app);
  if (install.code !== 0 && NETWORK_ERROR.test(install.stderr)) {
    t.comment(`skipped: the registry is unreachable and npm's cache lacks a dependency:\n${install.stderr.slice(-600)}`);
    return;
  }
  t.equal(install.code, 0, `npm install exits 0 ${install.code === 0 ? '' : install.stderr}`);
  const ours = `${install.stdout}${install.stderr}`.split('\n').filter((l) => l.startsWith('tsmuxd: '));
  t.equal(ours.length, 1, 'one line from tsmuxd');
  t.match(ours[0], /^tsmuxd: no prebuilt addon for linux-x64 \(No native build was found.*\) and none can be built here \(missing: a C\+\+ compiler .*make.*\): the daemon and 'tsmuxd sim' are unavailable; the client commands \(devices, .*\) work; to build it later: npm rebuild tsmuxd --build-from-source\.$/);
  t.comment(`pack + install: ${((Date.now() - started) / 1000).toFixed(1)} s; the install's output:\n${install.stdout}${install.stderr}`);
});

t.test('the installed client commands and library against a tsmuxd from the repo', async (t) => {
  if (install?.code !== 0) return void t.pass('skipped: the install did not succeed');
  const dir = tempDir(t);
  const socket = join(dir, 'tsmuxd.sock');
  const daemon = spawnDaemon(t, ['-f', '--no-usb', '-S', socket, '-P', 'NONE', '-C', join(dir, 'lockdown'), '--sim', '1', '--sim-state', join(dir, 'sims')]);
  await daemon.ready(SLOW_MS);
  const usbmux = new UsbmuxClient({ address: socket, timeoutMs: 20_000 });
  const [phone] = await waitUntil(async () => {
    const list = await usbmux.listDevices();
    return list.length === 1 && list;
  }, SLOW_MS, 'the simulated phone to be listed');
  const udid = phone!.serialNumber;
  const env = { ...bareEnv, USBMUXD_SOCKET_ADDRESS: `UNIX:${socket}` };
  const tsmuxd = async (t: Test, args: string[], code = 0): Promise<RunResult> => {
    const r = await run(TSMUXD, args, { env, timeoutMs: SLOW_MS });
    t.equal(r.code, code, `tsmuxd ${args.join(' ')}: exit ${code}${r.code === code ? '' : ` (${r.stderr.trim()})`}`);
    t.comment(`$ tsmuxd ${args.join(' ')}\n${r.stdout}${r.stderr}`.trimEnd());
    return r;
  };

  t.match((await tsmuxd(t, ['version'])).stdout, /no native addon: client commands only/);
  t.match(JSON.parse((await tsmuxd(t, ['devices', '--json'])).stdout), [{ udid }]);
  t.equal((await tsmuxd(t, ['info', udid, 'ProductVersion'])).stdout, '17.5\n');
  t.match((await tsmuxd(t, ['validate', udid])).stdout, /SUCCESS/);
  t.match(JSON.parse((await tsmuxd(t, ['tunnel', 'start', udid, '--json'])).stdout), { udid });
  t.ok(Object.keys((JSON.parse((await tsmuxd(t, ['rsd', '--udid', udid, '--json'])).stdout) as { Services: object }).Services).length > 0, 'rsd --udid');
  t.match(JSON.parse((await tsmuxd(t, ['tunnel', 'ls', '--json'])).stdout), [{ udid }]);
  const bench = await tsmuxd(t, ['bench', '--quick', '--json', '--cases', 'up,rtt,tunnel-up', '--bytes', '1M', '--rtt-count', '10']);
  const [identity, ...records] = bench.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(identity, { kind: 'daemon', name: 'tsmuxd', pid: daemon.pid, buid: String, platform: 'linux' }, 'bench: which daemon');
  t.same(records.map((r) => r.kind), ['throughput', 'rtt', 'throughput'], 'bench: the records');
  t.match(JSON.parse((await tsmuxd(t, ['top', '--once', '--json'])).stdout), { devices: [{ udid }] });
  await tsmuxd(t, ['tunnel', 'stop', udid]);

  const forward = killOnExit(spawn(TSMUXD, ['forward', '--json', `0:${ECHO_PORT}`], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  const exited = once(forward, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const m = await new OutputWatch(forward.stdout!).waitFor(/"event":"listening"[^\n]*"port":(\d+)/, SLOW_MS, exited);
  t.equal(await echoThrough(Number(m[1]), 'installed forward'), 'installed forward', 'forward: the echo answers');
  forward.kill('SIGTERM');
  t.equal((await exited).code, 0, 'forward: SIGTERM ends it');

  const refused = await tsmuxd(t, ['-f', '-S', join(dir, 'x.sock'), '-P', 'NONE', '-C', join(dir, 'x')], 1);
  t.match(refused.stderr, /^tsmuxd: the native addon is not available for linux-x64 .* At install: no prebuilt addon for linux-x64 .* The client commands \(devices, .*\) and the client library work without it\.\n$/s, 'the daemon: what is missing, and what works');
  t.equal(readFileSync(join(installed, 'build', 'tsmuxd-install-note.txt'), 'utf8').split('\n').length, 2, 'the install note: one line');

  const script = `
    import { UsbmuxClient } from 'tsmuxd';
    const devices = await new UsbmuxClient().listDevices();
    let daemon;
    try { await import('tsmuxd/daemon'); daemon = 'loaded'; } catch (err) { daemon = err.name; }
    console.log(JSON.stringify({ udids: devices.map((d) => d.serialNumber), daemon }));`;
  const lib = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env, timeoutMs: SLOW_MS });
  t.equal(lib.code, 0, `the library: exit 0 ${lib.stderr}`);
  t.same(JSON.parse(lib.stdout), { udids: [udid], daemon: 'NativeUnavailableError' }, "'tsmuxd' works; 'tsmuxd/daemon' says the addon is missing");
});

t.test('with the prebuild: the install is silent and compiles nothing', async (t) => {
  if (install?.code !== 0) return void t.pass('skipped: the first install did not succeed');
  const withPrebuild = join(work, 'app-prebuild');
  mkdirSync(withPrebuild);
  writeFileSync(join(withPrebuild, 'package.json'), '{ "name": "scratch-prebuild", "private": true }\n');
  const started = Date.now();
  const r = await npm(['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', fullTarball], withPrebuild);
  t.equal(r.code, 0, `npm install exits 0 ${r.code === 0 ? '' : r.stderr}`);
  t.notMatch(`${r.stdout}${r.stderr}`, /^tsmuxd: /m, 'nothing to say');
  t.comment(`install with the prebuild: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const version = await run(join(withPrebuild, 'node_modules', '.bin', 'tsmuxd'), ['version'], { env: bareEnv });
  t.match(version.stdout, /\(node v[\d.]+, libusb 1\.0\.\d+ static\)/, 'the installed daemon has its addon');
});

// Last: node-gyp's clean takes the install's note with build/.
t.test('npm rebuild --build-from-source: a failed build fails', async (t) => {
  if (install?.code !== 0) return void t.pass('skipped: the install did not succeed');
  const r = await npm(['rebuild', 'tsmuxd', '--build-from-source', '--foreground-scripts'], app);
  t.not(r.code, 0, 'exit non-zero');
  t.match(`${r.stdout}${r.stderr}`, /tsmuxd: building the native addon failed \(.*missing: a C\+\+ compiler.*\)\. --build-from-source was asked for, so the install fails\./);
});
