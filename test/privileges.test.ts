// -U USER: the daemon binds as root, then becomes USER on every thread and
// cannot become root again; it still serves clients and writes pair records.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as plist from 'plist';

import { lookupAccount, PrivilegeError, threadCredentials } from '../src/cli/privileges.js';
import { UsbmuxClient } from '../src/client/index.js';
import { packageRoot } from '../src/native/addon.js';
import { childrenOf, spawnDaemon, tempDir, waitUntil } from './helpers/daemon-process.js';

const asRoot = process.getuid?.() === 0;
const nobody = (() => {
  try {
    return lookupAccount('nobody');
  } catch {
    return undefined;
  }
})();
const skipDrop = !asRoot ? 'needs root' : !nobody ? 'no user nobody' : false;

t.test('lookupAccount reads /etc/passwd-format entries', async (t) => {
  const dir = tempDir(t);
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nusbmux:x:107:46:usbmux daemon:/var/lib/usbmux:/usr/sbin/nologin\nbroken:x::46::/:\n');
  t.same(lookupAccount('usbmux', passwd), { name: 'usbmux', uid: 107, gid: 46 });
  t.same(lookupAccount('root', passwd), { name: 'root', uid: 0, gid: 0 });
  t.throws(() => lookupAccount('usbmu', passwd), { code: 'ENOUSER', message: /no such user: usbmu/ }, 'a prefix is not a match');
  t.throws(() => lookupAccount('broken', passwd), { code: 'ENOUSER', message: /no numeric uid/ });
  t.throws(() => lookupAccount('x', passwd), PrivilegeError);
});

t.test('after dropPrivileges no way back to root works', { skip: skipDrop }, async (t) => {
  const mod = join(packageRoot, 'dist', 'src', 'cli', 'privileges.js');
  // A fresh process, so this test runner keeps its own root.
  const script = `
    import { dropPrivileges, lookupAccount, threadCredentials } from ${JSON.stringify(mod)};
    dropPrivileges(lookupAccount('nobody'));
    const tries = {};
    for (const [name, call] of [['setuid', () => process.setuid(0)], ['seteuid', () => process.seteuid(0)],
        ['setgid', () => process.setgid(0)], ['setegid', () => process.setegid(0)], ['setgroups', () => process.setgroups([0])]]) {
      try { call(); tries[name] = 'succeeded'; } catch (err) { tries[name] = err.code; }
    }
    console.log(JSON.stringify({ tries, threads: threadCredentials('self'), groups: process.getgroups() }));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise((r) => child.on('exit', r));
  // (Under tap, its process-info hook in the child may complain on stderr
  // at exit that nobody cannot write under the repo; that is not ours.)
  t.equal(code, 0, 'the child exits 0');
  t.notMatch(err, /PrivilegeError|EREGAIN/, 'and its own check passed');
  const result = JSON.parse(out);
  t.same(result.tries, { setuid: 'EPERM', seteuid: 'EPERM', setgid: 'EPERM', setegid: 'EPERM', setgroups: 'EPERM' }, 'every attempt to regain root fails with EPERM');
  t.ok(result.threads.length >= 2, `all ${result.threads.length} threads checked`);
  for (const th of result.threads) {
    t.same(th.uids, [nobody!.uid, nobody!.uid, nobody!.uid, nobody!.uid], `thread ${th.tid}: real/effective/saved/fs uid`);
    t.same(th.gids, [nobody!.gid, nobody!.gid, nobody!.gid, nobody!.gid], `thread ${th.tid}: gids`);
    t.match(th.capEff, /^0+$/, `thread ${th.tid}: no effective capabilities`);
  }
  t.notOk(result.groups.includes(0), 'root is not a supplementary group');
});

t.test('the daemon with -U nobody: every thread is nobody, clients and pair records still work', { skip: skipDrop }, async (t) => {
  const dir = tempDir(t, 'tsmuxd-priv-');
  chmodSync(dir, 0o711);  // nobody must reach its config dir under this root-owned temp dir
  const socket = join(dir, 'usbmuxd.sock');
  const config = join(dir, 'lockdown');
  const daemon = spawnDaemon(t, ['-f', '--no-usb', '-U', 'nobody', '-S', socket, '-P', 'NONE', '-C', config, '--sim-state', join(dir, 'sims')]);
  const address = await daemon.ready();
  await daemon.stderr.waitFor(/running as nobody .*root cannot be regained/, 5_000, daemon.exited);

  const threads = threadCredentials(daemon.pid);
  t.ok(threads.length >= 4, `the daemon has ${threads.length} threads (node, libuv, the addon's)`);
  for (const th of threads) {
    t.same(th.uids, [nobody!.uid, nobody!.uid, nobody!.uid, nobody!.uid], `thread ${th.tid}: uids`);
    t.same(th.gids, [nobody!.gid, nobody!.gid, nobody!.gid, nobody!.gid], `thread ${th.tid}: gids`);
    t.match(th.capEff, /^0+$/, `thread ${th.tid}: no capabilities`);
  }
  t.equal(statSync(socket).mode & 0o777, 0o666, 'the socket is 0666, as usbmuxd leaves it');
  t.equal(statSync(socket).uid, 0, 'and was created by root before the drop');
  const cfg = statSync(config);
  t.equal(cfg.uid, nobody!.uid, 'the config dir belongs to nobody');
  t.equal(cfg.mode & 0o777, 0o770, 'and is 0770 (group nobody)');

  const client = new UsbmuxClient({ address });
  t.same(await client.listDevices(), [], 'ListDevices answers after the drop');
  const udid = '00008110-001C2D3E4F5A6B7C';
  const record = Buffer.from(plist.build({ HostID: 'ABC', SystemBUID: 'DEF' }));
  await client.savePairRecord(udid, record);
  const saved = statSync(join(config, `${udid}.plist`));
  t.equal(saved.uid, nobody!.uid, 'a record saved after the drop belongs to nobody');
  t.equal(saved.mode & 0o777, 0o600, 'and is 0600');
  t.match(plist.parse((await client.readPairRecord(udid)).toString()), { HostID: 'ABC' }, 'and reads back');
  t.match(await client.readBUID(), /^[0-9A-F-]{36}$/, 'ReadBUID creates the SystemBUID after the drop');
  t.equal(statSync(join(config, 'SystemConfiguration.plist')).uid, nobody!.uid, 'in a file nobody owns');
  await daemon.stop();
});

/** Why nobody cannot run a sim from this checkout (a parent dir it cannot reach), or false. */
function checkoutUnreadable(): string | false {
  if (skipDrop) return skipDrop;
  const script = join(packageRoot, 'dist', 'src', 'cli', 'sim-peer-main.js');
  const probe = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(script)}, 4)`], { uid: nobody!.uid, gid: nobody!.gid });
  return probe.status === 0 ? false : `nobody cannot read ${script}`;
}

function uidsOf(pid: number): number[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'))!;
  return line.split(/\s+/).slice(1, 5).map(Number);
}

t.test('-U nobody with --sim: the sim runs as nobody, and one killed after the drop comes back as the same phone', { skip: checkoutUnreadable() }, async (t) => {
  const dir = tempDir(t, 'tsmuxd-priv-');
  chmodSync(dir, 0o711);
  const state = join(dir, 'state', 'sims');
  const socket = join(dir, 'usbmuxd.sock');
  const daemon = spawnDaemon(t, ['-f', '--no-usb', '-p', '-U', 'nobody', '--sim', '1', '-S', socket, '-P', 'NONE', '-C', join(dir, 'lockdown'), '--sim-state', state]);
  const client = new UsbmuxClient({ address: await daemon.ready() });
  const listed = async () => (await client.listDevices()).map((d) => d.serialNumber);
  const [udid] = await waitUntil(async () => ((await listed()).length === 1 ? listed() : null), 30_000, 'the sim to be listed');
  const [sim] = childrenOf(daemon.pid);
  t.ok(sim, 'the daemon has its sim child');
  t.same(uidsOf(sim!.pid), [nobody!.uid, nobody!.uid, nobody!.uid, nobody!.uid], 'the sim runs as nobody from the start');
  t.equal(statSync(state).uid, nobody!.uid, 'its state root belongs to nobody');
  t.equal(statSync(state).mode & 0o777, 0o700, 'and is 0700');
  t.equal(statSync(join(state, 'sim-0')).uid, nobody!.uid, 'as does the phone\'s own state');

  process.kill(sim!.pid, 'SIGKILL');
  await daemon.stderr.waitFor(/sim 0: restarted, pid \d+/, 30_000, daemon.exited);
  const back = await waitUntil(async () => ((await listed()).length === 1 ? listed() : null), 30_000, 'the restarted sim to be listed');
  t.same(back, [udid], 'the restarted sim read its identity back: the same UDID');
  t.notOk(/EACCES|permission denied/i.test(daemon.stderr.text), 'no permission error in the log');
  t.same(await daemon.stop(), { code: 0, signal: null }, 'and the daemon stops cleanly');
});

t.test('-U with an unknown user: a clear error and exit 1, nothing served', async (t) => {
  const dir = tempDir(t, 'tsmuxd-priv-');
  const socket = join(dir, 'usbmuxd.sock');
  const daemon = spawnDaemon(t, ['-f', '--no-usb', '-U', 'no-such-user-here', '-S', socket, '-P', 'NONE', '-C', join(dir, 'lockdown')]);
  const exit = await daemon.waitExit(15_000);
  t.equal(exit.code, 1);
  t.match(daemon.stderr.text, /no such user: no-such-user-here/);
});
