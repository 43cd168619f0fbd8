// The daemon command as users and init systems run it: a child process with
// usbmuxd's flags, its pidfile lock, its signals (-x, -X, SIGTERM), the
// daemonized start, the JSON log, and its refusals.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { UsbmuxClient } from '../src/client/index.js';
import {
  isAlive,
  runCli,
  sleep,
  socketAccepts,
  spawnDaemon,
  tempDir,
  waitUntil,
} from './helpers/daemon-process.js';

interface Paths {
  dir: string;
  socket: string;
  pidfile: string;
  config: string;
}

function paths(t: Parameters<typeof tempDir>[0]): Paths {
  const dir = tempDir(t, 'tsmuxd-cmd-');
  return { dir, socket: join(dir, 'usbmuxd.sock'), pidfile: join(dir, 'usbmuxd.pid'), config: join(dir, 'lockdown') };
}

// --no-usb: these tests are about the command, not about any phone on the machine.
const base = (p: Paths) => ['--no-usb', '-S', p.socket, '-P', p.pidfile, '-C', p.config, '--sim-state', join(p.dir, 'sims')];

/** Gone, or a zombie waiting for a reaper that is not us. */
function isGone(pid: number): boolean {
  if (!isAlive(pid)) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

const ATTACHED = /device (\d+) attached: (\S+)/;

t.test('a second instance with the same pidfile refuses to start while the first runs', async (t) => {
  const p = paths(t);
  const first = spawnDaemon(t, ['-f', ...base(p)]);
  t.equal(await first.ready(), `UNIX:${p.socket}`, 'the first instance prints its export line');
  t.equal(readFileSync(p.pidfile, 'utf8'), `${first.pid}\n`, "the pidfile holds the first instance's pid");

  const otherSocket = join(p.dir, 'second.sock');
  const second = await runCli(['-f', '-S', otherSocket, '-P', p.pidfile, '-C', p.config]);
  t.comment(`second instance: exit ${second.code}, stderr ${JSON.stringify(second.stderr)}`);
  t.notOk(second.timedOut, 'the second instance gives up at once');
  t.not(second.code, 0, 'and exits non-zero');
  t.match(second.stderr, /already running/, 'saying another instance is already running');
  t.match(second.stderr, p.pidfile, 'and naming the pidfile');
  t.notOk(existsSync(otherSocket), 'it created no socket');

  t.equal(readFileSync(p.pidfile, 'utf8'), `${first.pid}\n`, "the pidfile still holds the first instance's pid");
  t.equal(first.exit(), null, 'the first instance is still running');
  t.ok(await socketAccepts(p.socket), 'and still accepts clients');
  t.same(await first.stop(), { code: 0, signal: null });
});

t.test('SIGTERM: exit 0, socket file and pidfile removed', async (t) => {
  const p = paths(t);
  const d = spawnDaemon(t, ['-f', ...base(p)]);
  await d.ready();
  t.ok(existsSync(p.socket), 'the socket exists while it runs');
  t.ok(existsSync(p.pidfile), 'so does the pidfile');
  d.child.kill('SIGTERM');
  t.same(await d.waitExit(10_000), { code: 0, signal: null }, 'exit status 0, not killed by the signal');
  t.notOk(existsSync(p.socket), 'the socket file is gone');
  t.notOk(existsSync(p.pidfile), 'the pidfile is gone');
  t.match(d.stderr.text, /stopping: SIGTERM/, 'it logged why it stopped');
});

t.test('-X with the pidfile stops a running instance', async (t) => {
  const p = paths(t);
  const d = spawnDaemon(t, ['-f', ...base(p)]);
  await d.ready();
  const x = await runCli(['-X', '-P', p.pidfile]);
  t.equal(x.code, 0, `tsmuxd -X exits 0 ${x.stderr}`);
  t.same(await d.waitExit(10_000), { code: 0, signal: null }, 'the running instance exits 0');
  t.notOk(existsSync(p.socket), 'its socket file is gone');
  t.notOk(existsSync(p.pidfile), 'its pidfile is gone');
});

t.test('-X without a running instance says so and exits non-zero', async (t) => {
  const p = paths(t);
  const x = await runCli(['-X', '-P', p.pidfile]);
  t.not(x.code, 0, 'non-zero exit');
  t.match(x.stderr, p.pidfile, 'the message names the pidfile');
});

t.test('-x with -z and no devices makes the running instance exit', async (t) => {
  const p = paths(t);
  const d = spawnDaemon(t, ['-f', '-z', ...base(p)]);
  await d.ready();
  const x = await runCli(['-x', '-P', p.pidfile]);
  t.equal(x.code, 0, `tsmuxd -x exits 0 ${x.stderr}`);
  t.same(await d.waitExit(10_000), { code: 0, signal: null }, 'the instance exits 0');
  t.match(d.stderr.text, /SIGUSR1 with no devices/, 'and logged why');
  t.notOk(existsSync(p.socket), 'its socket file is gone');
  t.notOk(existsSync(p.pidfile), 'its pidfile is gone');
});

t.test('-x with -z and a simulated phone attached: the instance stays', async (t) => {
  const p = paths(t);
  const d = spawnDaemon(t, ['-f', '-z', '--sim', '1', ...base(p)]);
  const address = await d.ready();
  await d.stderr.waitFor(ATTACHED, 15_000, d.exited);
  const x = await runCli(['-x', '-P', p.pidfile]);
  t.equal(x.code, 0, `tsmuxd -x exits 0 ${x.stderr}`);
  await d.stderr.waitFor(/SIGUSR1: devices are attached; staying/, 10_000, d.exited);
  await sleep(500);
  t.equal(d.exit(), null, 'still running half a second later');
  const devices = await new UsbmuxClient({ address }).listDevices();
  t.equal(devices.length, 1, 'and still serving its phone');
  t.same(await d.stop(), { code: 0, signal: null });
});

t.test('-x without -z is ignored (as usbmuxd does)', async (t) => {
  const p = paths(t);
  const d = spawnDaemon(t, ['-f', ...base(p)]);
  await d.ready();
  const x = await runCli(['-x', '-P', p.pidfile]);
  t.equal(x.code, 0, 'the signal was delivered');
  await sleep(500);
  t.equal(d.exit(), null, 'the instance did not exit');
  t.ok(await socketAccepts(p.socket), 'and still accepts clients');
  t.same(await d.stop(), { code: 0, signal: null });
});

t.test('without -f the command returns 0 once the daemonized child listens', async (t) => {
  const p = paths(t);
  let daemonPid: number | undefined;
  t.teardown(() => {
    // Never leave a detached daemon behind, whatever failed.
    if (daemonPid !== undefined && !isGone(daemonPid)) process.kill(daemonPid, 'SIGKILL');
  });
  const r = await runCli(base(p), { timeoutMs: 20_000 });
  if (existsSync(p.pidfile)) daemonPid = Number(readFileSync(p.pidfile, 'utf8').trim());
  t.notOk(r.timedOut, `the command returned (in ${r.ms} ms)`);
  t.equal(r.code, 0, `exit status 0 ${r.stderr}`);
  t.equal(r.stdout, '', 'the daemonizing parent prints nothing');
  t.ok(daemonPid !== undefined && daemonPid > 0, 'the pidfile names the daemon');
  if (daemonPid === undefined) return;
  t.notOk(isGone(daemonPid), 'the daemon is running');
  const cmdline = readFileSync(`/proc/${daemonPid}/cmdline`, 'utf8').split('\0');
  t.ok(cmdline.includes('--foreground'), `it is the foreground copy: ${cmdline.join(' ')}`);
  t.ok(await socketAccepts(p.socket), 'its socket accepts clients as soon as the command returns');
  t.same(await new UsbmuxClient({ address: `UNIX:${p.socket}` }).listDevices(), [], 'and answers ListDevices');

  const x = await runCli(['-X', '-P', p.pidfile]);
  t.equal(x.code, 0, `tsmuxd -X exits 0 ${x.stderr}`);
  const pid = daemonPid;
  await waitUntil(() => isGone(pid), 10_000, `pid ${pid} to go away`);
  t.ok(isGone(pid), 'the daemon is gone');
  t.notOk(existsSync(p.socket), 'its socket file is gone');
  t.notOk(existsSync(p.pidfile), 'its pidfile is gone');
});

t.test('without -f a start that fails reports the reason and exits non-zero', async (t) => {
  const p = paths(t);
  const first = spawnDaemon(t, ['-f', ...base(p)]);
  await first.ready();
  const r = await runCli(['-S', join(p.dir, 'other.sock'), '-P', p.pidfile, '-C', p.config]);
  t.notOk(r.timedOut, 'the command returned');
  t.not(r.code, 0, 'non-zero exit');
  t.match(r.stderr, /already running/, 'with the child\'s reason');
  t.equal(readFileSync(p.pidfile, 'utf8'), `${first.pid}\n`, 'the pidfile is untouched');
  t.same(await first.stop(), { code: 0, signal: null });
});

t.test('--json-log lines parse as JSON with time, level and msg', async (t) => {
  const p = paths(t);
  const d = spawnDaemon(t, ['-f', '--json-log', '-v', '--sim', '1', ...base(p)]);
  await d.ready();
  await d.stderr.waitFor(/attached/, 15_000, d.exited);
  t.same(await d.stop(), { code: 0, signal: null });
  const lines = d.stderr.lines();
  t.ok(lines.length >= 3, `${lines.length} log lines`);
  const levels = new Set(['fatal', 'error', 'warning', 'notice', 'info', 'debug', 'spew', 'flood']);
  let bad = 0;
  for (const line of lines) {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      bad++;
      t.fail(`not JSON: ${line}`);
      continue;
    }
    const ok =
      typeof entry.time === 'string' &&
      !Number.isNaN(Date.parse(entry.time)) &&
      typeof entry.level === 'string' &&
      levels.has(entry.level) &&
      typeof entry.msg === 'string';
    if (!ok) {
      bad++;
      t.fail(`missing time/level/msg: ${line}`);
    }
  }
  t.equal(bad, 0, 'every line is a JSON object with an ISO time, a known level and a msg');
  t.ok(lines.some((l) => /"msg":"listening on UNIX:/.test(l)), 'the listening line is among them');
  t.ok(lines.some((l) => /"msg":"stopping: SIGTERM"/.test(l)), 'and the stopping line');
  t.equal(d.stdout.text, `export USBMUXD_SOCKET_ADDRESS=UNIX:${p.socket}\n`, 'stdout carries only the export line');
});

t.test('an existing non-socket file at the -S path: a clear failure, and the file is left alone', async (t) => {
  const p = paths(t);
  const content = 'not a socket: precious data\n';
  writeFileSync(p.socket, content);
  const r = await runCli(['-f', ...base(p)]);
  t.comment(`exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`);
  t.notOk(r.timedOut, 'it gives up at once');
  t.not(r.code, 0, 'non-zero exit');
  t.match(r.stderr, /exists and is not a socket/, 'saying the path is not a socket');
  t.match(r.stderr, p.socket, 'and naming the path');
  t.ok(existsSync(p.socket), 'the file still exists');
  t.equal(existsSync(p.socket) ? readFileSync(p.socket, 'utf8') : null, content, 'with its content unchanged');
  t.notOk(existsSync(p.pidfile), 'no pidfile is left behind');
});

t.test("a refused instance on a live socket leaves the running instance's socket alone", async (t) => {
  const p = paths(t);
  const first = spawnDaemon(t, ['-f', ...base(p)]);
  const address = await first.ready();
  // Another pidfile (or -P NONE), so only the socket check can stop it.
  const r = await runCli(['-f', '-S', p.socket, '-P', 'NONE', '-C', p.config]);
  t.comment(`second instance: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`);
  t.not(r.code, 0, 'the second instance exits non-zero');
  t.match(r.stderr, /another usbmuxd is listening/, 'saying the socket is in use');
  t.ok(existsSync(p.socket), "the first instance's socket file is still there");
  t.ok(await socketAccepts(p.socket), 'and still reaches the first instance');
  const list = await new UsbmuxClient({ address, timeoutMs: 2_000 }).listDevices().then(
    (l) => l,
    (err: Error) => err.message,
  );
  t.same(list, [], 'ListDevices still works');
  t.same(await first.stop(), { code: 0, signal: null });
});

const FLAGS: Array<[short: string | null, long: string]> = [
  ['h', 'help'],
  ['f', 'foreground'],
  ['v', 'verbose'],
  ['V', 'version'],
  ['U', 'user'],
  ['n', 'disable-hotplug'],
  ['z', 'enable-exit'],
  ['p', 'no-preflight'],
  ['u', 'udev'],
  ['s', 'systemd'],
  ['C', 'config-dir'],
  ['S', 'socket'],
  ['P', 'pidfile'],
  ['x', 'exit'],
  ['X', 'force-exit'],
  ['l', 'logfile'],
  [null, 'json-log'],
  [null, 'cable'],
  [null, 'sim'],
  [null, 'sim-trust'],
  [null, 'sim-state'],
  [null, 'no-usb'],
];

t.test('-h prints the usage listing every flag', async (t) => {
  for (const args of [['-h'], ['--help']]) {
    const r = await runCli(args);
    t.equal(r.code, 0, `${args[0]}: exit 0`);
    t.match(r.stdout, /usage: tsmuxd/, `${args[0]}: prints the usage`);
    for (const [short, long] of FLAGS) {
      if (short) t.match(r.stdout, new RegExp(`(^|[\\s,])-${short}[,\\s]`, 'm'), `${args[0]} lists -${short}`);
      t.match(r.stdout, new RegExp(`(^|[\\s,])--${long}(\\s|$)`, 'm'), `${args[0]} lists --${long}`);
    }
  }
});

t.test('an unknown flag exits non-zero without starting', async (t) => {
  const p = paths(t);
  for (const flag of ['--no-such-flag', '-q']) {
    const r = await runCli(['-f', flag, ...base(p)], { timeoutMs: 10_000 });
    t.notOk(r.timedOut, `${flag}: the command returned`);
    t.not(r.code, 0, `${flag}: non-zero exit`);
    t.match(r.stderr, flag, `${flag}: the message names the flag`);
    t.notOk(existsSync(p.socket), `${flag}: no socket was created`);
    t.notOk(existsSync(p.pidfile), `${flag}: no pidfile was created`);
  }
});
