// tsmuxd bench and the client commands on the platforms Apple's usbmuxd runs
// on (issue 21), with the platform injected: where each looks for the daemon
// by default, how the daemon's process is found and read (ps, the macOS
// path, runs for real here on a process of our own; PowerShell, the Windows
// path, cannot, so its commands are checked against canned answers), and
// the identity record that leads a bench's results.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

import t, { type Test } from 'tap';

import { findDaemonPid, identifyDaemon, MOBILE_DEVICE_FRAMEWORK, USBMUXD_PROCESS } from '../src/bench/daemon-identity.js';
import { daemonMeter, parsePsTime, processProbe, type Exec } from '../src/bench/daemon-process.js';
import { cpuSeconds } from '../src/bench/proc.js';
import { daemonAddress } from '../src/cli/commands/common.js';
import { UsageError } from '../src/cli/usage-error.js';
import { clientSocketAddress, defaultSocketPath, platformSocketAddress, type SocketAddress } from '../src/protocol/address.js';
import { killOnExit, tempDir } from './helpers/daemon-process.js';
import { frame, parseXmlBody, xmlPlist } from './helpers/usbmuxd-harness.js';

const unix = (path: string): SocketAddress => ({ kind: 'unix', path });
const APPLE_WINDOWS: SocketAddress = { kind: 'tcp', host: '127.0.0.1', port: 27015 };

t.test('the default daemon address on each platform', async (t) => {
  const none = () => false;
  const all = () => true;
  t.same(daemonAddress(undefined, { platform: 'darwin', env: {}, exists: none }), unix('/var/run/usbmuxd'), "macOS: Apple's usbmuxd");
  t.same(daemonAddress(undefined, { platform: 'win32', env: {}, exists: none }), APPLE_WINDOWS, 'Windows: Apple Mobile Device Service');
  t.same(daemonAddress(undefined, { platform: 'linux', env: {}, exists: all }), unix('/var/run/usbmuxd'), 'Linux: the system socket');
  const user = defaultSocketPath();
  const onlyUser = (p: string) => p === user;
  t.same(daemonAddress(undefined, { platform: 'linux', env: {}, exists: onlyUser }), unix(user), "Linux: a user's tsmuxd when only it listens");
  t.same(daemonAddress(undefined, { platform: 'darwin', env: {}, exists: onlyUser }), unix('/var/run/usbmuxd'), 'never on macOS (tsmuxd does not run there)');
  for (const platform of ['linux', 'darwin', 'win32'] as const) {
    const env = { USBMUXD_SOCKET_ADDRESS: '192.168.1.5:27015' };
    t.same(daemonAddress(undefined, { platform, env, exists: all }), { kind: 'tcp', host: '192.168.1.5', port: 27015 }, `${platform}: USBMUXD_SOCKET_ADDRESS first`);
    t.same(daemonAddress('UNIX:/tmp/x.sock', { platform, env, exists: all }), unix('/tmp/x.sock'), `${platform}: --socket before all`);
  }
  t.throws(() => daemonAddress(undefined, { platform: 'win32', env: { USBMUXD_SOCKET_ADDRESS: 'nowhere' } }), UsageError, 'a bad variable is a usage error');
  t.same(clientSocketAddress({}, 'win32'), APPLE_WINDOWS, 'the client library: the same per-platform default');
  t.same(clientSocketAddress({}, 'darwin'), unix('/var/run/usbmuxd'));
  t.same(platformSocketAddress('freebsd'), unix('/var/run/usbmuxd'), 'other Unixes: the usual path');
});

t.test("ps's TIME column, from procps and from macOS", async (t) => {
  t.equal(parsePsTime('00:01:02'), 62);
  t.equal(parsePsTime(' 1-02:03:04\n'), 93_784);
  t.equal(parsePsTime('1:02.34'), 62.34);
  t.equal(parsePsTime('123:45.67'), 7425.67, 'macOS minutes past 59');
  for (const bad of ['', 'N/A', '12', '1:2:3:4', '-1:00']) t.ok(Number.isNaN(parsePsTime(bad)), `'${bad}' is not a time`);
});

t.test('the macOS probe (ps, pgrep) on a real process, beside /proc', async (t) => {
  // A process with a name of its own: node through a symlink (comm is the link's name).
  const name = `tsmxprobe${process.pid % 100_000}`;
  const link = join(tempDir(t), name);
  symlinkSync(process.execPath, link);
  // Spins until it has had 1.05 s of CPU (by the clock it may take longer on a loaded machine).
  const busy = 'for (;;) { const u = process.cpuUsage(); if (u.user + u.system >= 1.05e6) break; } console.log("spun"); setInterval(() => {}, 1000);';
  const child = killOnExit(spawn(link, ['-e', busy], { stdio: ['ignore', 'pipe', 'ignore'] }));
  t.teardown(() => void child.kill('SIGKILL'));
  await once(child.stdout!, 'data');
  const pid = child.pid!;
  const ps = processProbe('darwin');
  t.equal(ps.cpuFrom, 'ps -o time=');
  t.same(ps.pidsNamed(name), [pid], 'found by name (pgrep -x)');
  t.same(ps.pidsNamed(`${name}x`), [], 'and no other');
  const fromProc = cpuSeconds(pid);
  const fromPs = ps.cpuSeconds(pid)!;
  t.ok(fromProc >= 1, `/proc: ${fromProc} s after a 1.05 s spin`);
  // procps prints whole seconds; macOS hundredths.
  t.ok(fromPs >= 1 && fromPs <= fromProc + 1, `ps -o time=: ${fromPs} s`);
  t.ok(ps.rssBytes(pid)! > 1 << 20, 'its resident memory');
  t.equal(ps.executable(pid), name, 'ps -o comm= (the whole path on macOS)');
  t.equal(ps.cpuSeconds(2 ** 22 + 7), null, 'a pid that does not exist reads as null, not zero');
  const linux = processProbe('linux');
  t.same(linux.pidsNamed(name), [pid], 'the Linux probe finds it by name too');
  t.equal(linux.executable(pid), process.execPath, 'and its executable');
  t.equal(linux.cpuSeconds(2 ** 22 + 7), null);
});

/** PowerShell's answers, and the commands asked. */
function fakePowerShell(answers: Array<[RegExp, string | null]>): { exec: Exec; asked: string[] } {
  const asked: string[] = [];
  const exec: Exec = (file, args) => {
    const command = [file, ...args].join(' ');
    asked.push(command);
    return answers.find(([re]) => re.test(command))?.[1] ?? null;
  };
  return { exec, asked };
}

t.test('the Windows probe: Get-Process through PowerShell', async (t) => {
  const { exec, asked } = fakePowerShell([
    [/-Name 'AppleMobileDeviceService'/, '4242\r\n'],
    [/-Id 4242 .*TotalProcessorTime\.Ticks/, '123456789\r\n'],
    [/-Id 4242 .*WorkingSet64/, '10485760\r\n'],
    [/-Id 4343 .*TotalProcessorTime\.Ticks/, '\r\n'],
  ]);
  const win = processProbe('win32', exec);
  t.same(win.pidsNamed('AppleMobileDeviceService'), [4242]);
  t.equal(win.cpuSeconds(4242), 12.3456789, 'Ticks are 100 ns');
  t.equal(win.rssBytes(4242), 10 << 20);
  t.equal(win.cpuSeconds(4343), null, "a service's CPU hidden from a non-admin is null");
  t.same(win.pidsNamed("x'; Stop-Computer; '"), [], 'a name is never pasted into a command unchecked');
  t.match(asked[0], /^powershell\.exe -NoProfile -NonInteractive -Command /);
  const meter = daemonMeter(win, 4343);
  t.equal(meter.cpuSeconds(), null, 'a meter on an unreadable CPU stays empty, never zero');
  const ps = daemonMeter(processProbe('darwin', () => null), 311);
  t.same([ps.cpuSeconds(), ps.rssBytes()], [null, null], 'so does one where ps cannot run');
});

t.test("finding the daemon's pid, per platform", async (t) => {
  const { exec } = fakePowerShell([[/-Name 'AppleMobileDeviceService'/, '4242\r\n']]);
  const win = processProbe('win32', exec);
  t.same(findDaemonPid(APPLE_WINDOWS, 'win32', win), { pid: 4242, from: 'the only process named AppleMobileDeviceService' });
  t.same(findDaemonPid({ kind: 'tcp', host: '127.0.0.1', port: 5000 }, 'win32', win), { from: 'nothing found listening on 127.0.0.1:5000' }, 'not looked up by name at another address');
  const two = processProbe('win32', fakePowerShell([[/-Name/, '1\r\n2\r\n']]).exec);
  t.same(findDaemonPid(APPLE_WINDOWS, 'win32', two), { from: '2 processes named AppleMobileDeviceService' }, 'two: not guessed');
  t.same(findDaemonPid(APPLE_WINDOWS, 'win32', win, 77), { pid: 77, from: '--daemon-pid' }, '--daemon-pid wins');
  t.equal(USBMUXD_PROCESS.darwin, 'usbmuxd');
  if (processProbe('linux').pidsNamed('usbmuxd').length === 0) {
    const darwin = findDaemonPid(unix('/var/run/usbmuxd'), 'darwin', processProbe('darwin'));
    t.same(darwin, { from: 'no process named usbmuxd' }, 'macOS at /var/run/usbmuxd: pgrep -x usbmuxd, for real (none runs here)');
  }
});

/** A stand-in for Apple's daemon on loopback TCP: it answers ReadBUID as usbmuxd does. */
async function buidServer(t: Test, buid: string): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', (d: Buffer) => {
      const tag = d.readUInt32LE(12);
      const type = String(parseXmlBody(d.subarray(16)).MessageType);
      const reply = type === 'ReadBUID' ? xmlPlist({ BUID: buid }) : xmlPlist({ MessageType: 'Result', Number: 1 });
      socket.end(frame(1, 8, tag, Buffer.from(reply, 'utf8')));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

t.test('the identity record: Windows, macOS, and Debian usbmuxd --version', async (t) => {
  const BUID = 'E1D8E16C-1111-4C4B-9F3C-0123456789AB';
  const port = await buidServer(t, BUID);
  const address = { kind: 'tcp' as const, host: '127.0.0.1', port };
  const exe = 'C:\\Program Files\\Common Files\\Apple\\Mobile Device Support\\AppleMobileDeviceService.exe';
  const { exec } = fakePowerShell([
    [/\(Get-Process -Id 4242 .*\)\.Path/, `${exe}\r\n`],
    [/Get-Item -LiteralPath 'C:\\Program Files.*ProductVersion/, '18.3.0.24\r\n'],
  ]);
  const win = await identifyDaemon({
    address, platform: 'win32', probe: processProbe('win32', exec), exec,
    found: { pid: 4242, from: 'the only process named AppleMobileDeviceService' }, isTsmuxd: false, cpuReadable: true,
  });
  t.match(win, {
    kind: 'daemon', name: 'AppleMobileDeviceService', version: '18.3.0.24', versionFrom: 'AppleMobileDeviceService.exe file version',
    buid: BUID, address: `127.0.0.1:${port}`, pid: 4242, cpuFrom: 'Get-Process TotalProcessorTime', platform: 'win32',
  });

  const appleUsbmuxd = `${MOBILE_DEVICE_FRAMEWORK}/Versions/A/Resources/usbmuxd`;
  const mac = fakePowerShell([[/^ps -o comm= -p 311$/, `${appleUsbmuxd}\n`]]);
  const darwin = await identifyDaemon({
    address, platform: 'darwin', probe: processProbe('darwin', mac.exec), exec: mac.exec,
    found: { pid: 311, from: 'the only process named usbmuxd' }, isTsmuxd: false, cpuReadable: true,
  });
  // The framework's Info.plist is only on a Mac: here the version stays null.
  t.match(darwin, { name: 'usbmuxd', version: existsSync(MOBILE_DEVICE_FRAMEWORK) ? String : null, buid: BUID, pid: 311, cpuFrom: 'ps -o time=', platform: 'darwin' });
  t.comment(`a Mac's record (version read there from MobileDevice.framework's Info.plist): ${JSON.stringify(darwin)}`);

  const unknown = await identifyDaemon({ address, platform: 'darwin', probe: processProbe('darwin', () => null), found: { from: 'no process named usbmuxd' }, isTsmuxd: false, cpuReadable: false });
  t.match(unknown, { name: null, version: null, pid: null, pidFrom: 'no process named usbmuxd', cpuFrom: null }, 'nothing guessed without a pid');

  const debian = '/usr/sbin/usbmuxd';
  if (!existsSync(debian)) {
    t.comment(`${debian} is not installed (apt-get install usbmuxd): its --version is not checked`);
    return;
  }
  // Debian's usbmuxd cannot serve here (it wants USB and /var/run/usbmuxd), so
  // the probe names it as the executable of a pid; its --version runs for real.
  const linux = { ...processProbe('linux'), executable: () => debian, commandLine: () => [debian, '-f'] };
  const lib = await identifyDaemon({ address, platform: 'linux', probe: linux, found: { pid: 1234, from: "the socket's owner" }, isTsmuxd: false, cpuReadable: true });
  t.match(lib, { name: 'usbmuxd', version: /^usbmuxd \d+\.\d+/, versionFrom: `${debian} --version`, cpuFrom: '/proc/PID/stat' });
});
