// tsmuxd info / pair / validate / unpair as a user runs them (the built
// command, a child process) against a daemon with a simulated phone in
// prompt mode: pair waits for the Trust tap, the record lands in the daemon,
// info reads session-only values with it, unpair removes it on both sides.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

import { MAIN_JS } from './helpers/daemon-process.js';
import { startDaemon, waitUntil } from './helpers/usbmuxd-harness.js';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function tsmuxd(args: string[], address: string): { done: Promise<Ran> } {
  const child = spawn(process.execPath, [MAIN_JS, ...args, '--socket', address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { done };
}

t.test('info, pair (waiting for Trust), validate, unpair', async (t) => {
  const setup = await startDaemon(t, { sims: 1, sim: { trust: 'prompt' } });
  const peer = setup.peers[0]!;
  const udid = peer.identity.udid;

  const simple = await tsmuxd(['info', udid, 'ProductVersion'], setup.address).done;
  t.same(simple, { code: 0, stdout: '17.5\n', stderr: '' }, 'info without a record: a pre-session key');
  const refused = await tsmuxd(['info', udid, 'SerialNumber'], setup.address).done;
  t.equal(refused.code, 1, 'a session-only key without a record fails');
  t.match(refused.stderr, /GetProhibited/, 'saying why');

  const started = Date.now();
  const pairing = tsmuxd(['pair', udid, '--json'], setup.address);
  await waitUntil(() => peer.lockdownd.trustDialog === 'pending', 'the trust dialog');
  await new Promise((r) => setTimeout(r, 1500));
  peer.trust();
  const paired = await pairing.done;
  t.comment(`tsmuxd pair, Trust tapped after 1.5 s of dialog: ${Date.now() - started} ms in all`);
  t.equal(paired.code, 0, `pair exits 0 ${paired.stderr}`);
  t.same(JSON.parse(paired.stdout), { udid, result: 'paired' });
  const record = await setup.daemon.store.readRecord(udid);
  t.ok(peer.lockdownd.pairRecords.has(record.HostID as string), 'the daemon holds the record the phone accepted');

  // The phone re-enumerates after the tap; the commands find it by UDID.
  const serial = await waitUntil(async () => {
    const r = await tsmuxd(['info', udid, 'SerialNumber'], setup.address).done;
    return r.code === 0 ? r.stdout : null;
  }, 'info with the record');
  t.equal(serial, `${peer.identity.serialNumber}\n`, 'info reads a session-only key');
  const intl = await tsmuxd(['info', udid, '--domain', 'com.apple.international', '--json'], setup.address).done;
  t.same(JSON.parse(intl.stdout), { Language: 'en', Locale: 'en_US' }, 'a domain as JSON');
  const valid = await tsmuxd(['validate', udid], setup.address).done;
  t.same(valid, { code: 0, stdout: `SUCCESS: Validated pairing with device ${udid}\n`, stderr: '' });

  const unpaired = await tsmuxd(['unpair', udid], setup.address).done;
  t.equal(unpaired.stdout, `SUCCESS: Unpaired with device ${udid}\n`);
  t.equal(peer.lockdownd.pairRecords.size, 0, 'the phone forgot the host');
  await t.rejects(setup.daemon.store.readRecord(udid), 'and the daemon the record');
  const invalid = await tsmuxd(['validate', udid, '--json'], setup.address).done;
  t.equal(invalid.code, 1, 'validate after unpair fails');

  peer.lockdownd.trustMode = 'deny';
  const denied = await tsmuxd(['pair', udid, '--json'], setup.address).done;
  t.equal(denied.code, 1);
  t.same(JSON.parse(denied.stdout), { udid, result: 'denied', error: 'UserDeniedPairing' }, 'a denial is reported');
});
