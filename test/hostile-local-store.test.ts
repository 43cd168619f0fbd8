// The pair-record store broken under a running daemon (issue 17): a corrupt
// plist, a directory in place of a file, a directory of mode 000 as a
// non-root daemon, and a full tmpfs. Every request that touches it
// (ReadBUID, ReadPairRecord, SavePairRecord, DeletePairRecord) is answered,
// a failure is logged with the file it concerns, nothing is replaced behind
// the user's back (no new SystemBUID over an unreadable one, no record lost
// to a failed save), and the daemon serves the next client.
import { chmodSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import t, { type Test } from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { lookupAccount } from '../src/cli/privileges.js';
import { spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { parseXmlBody, plistRequest, RawClient, xmlPlist, type Dict } from './helpers/usbmuxd-harness.js';

const UDID = '00008101-000A1B2C3D4E5F60';
const RECORD = Buffer.from(xmlPlist({ HostID: 'C0FFEE00-0000-4000-8000-000000000001', SystemBUID: 'B0D1E5-TEST' }));
const asRoot = process.getuid?.() === 0;

interface Daemon {
  proc: DaemonProcess;
  socketPath: string;
  configDir: string;
}

function startDaemon(t: Test, dir: string, extra: string[] = [], wrap: string[] = []): Daemon {
  const socketPath = join(dir, 'usbmuxd.sock');
  const configDir = join(dir, 'lockdown');
  const proc = spawnDaemon(t, ['-f', '-p', '--no-usb', '-S', socketPath, '-P', 'NONE', '-C', configDir, ...extra], process.env, wrap);
  return { proc, socketPath, configDir };
}

/** One plist request on its own connection; the reply dict. */
async function ask(t: Test, d: Daemon, request: Dict): Promise<Dict> {
  const client = await RawClient.open(t, d.socketPath);
  try {
    client.send(plistRequest(9, request as Record<string, string | Buffer>));
    return (await client.readPlist(10_000)).dict;
  } finally {
    client.destroy();
  }
}

const readBUID = { MessageType: 'ReadBUID' };
const readRecord = { MessageType: 'ReadPairRecord', PairRecordID: UDID };
const saveRecord = { MessageType: 'SavePairRecord', PairRecordID: UDID, PairRecordData: RECORD };
const deleteRecord = { MessageType: 'DeletePairRecord', PairRecordID: UDID };

/** The record in a ReadPairRecord reply, parsed (records round-trip by value, not by bytes). */
function recordOf(reply: Dict): unknown {
  const data = reply.PairRecordData;
  return data instanceof Uint8Array ? parseXmlBody(Buffer.from(data)) : reply;
}

/** The daemon's log (stderr, read as it arrives: maybe after the reply) comes to match `re`. */
async function logged(t: Test, d: Daemon, re: RegExp, message: string): Promise<void> {
  const line = await d.proc.stderr.waitFor(re, 5_000).catch(() => null);
  t.ok(line, message, line ? {} : { log: d.proc.stderr.text.slice(-2000), pattern: String(re) });
}

/** The daemon is up and a fresh client is answered. */
async function stillServes(t: Test, d: Daemon): Promise<void> {
  t.equal(d.proc.exit(), null, 'the daemon is still running');
  const devices = await new UsbmuxClient({ address: { kind: 'unix', path: d.socketPath }, timeoutMs: 10_000 }).listDevices();
  t.same(devices, [], 'and answers the next client');
}

t.test('a corrupt SystemConfiguration.plist and a corrupt record', async (t) => {
  const d = startDaemon(t, tempDir(t));
  await d.proc.ready();
  const garbage = Buffer.from('<?xml version="1.0"?><plist><dict><key>SystemBUID</key><stri');
  writeFileSync(join(d.configDir, 'SystemConfiguration.plist'), garbage);
  writeFileSync(join(d.configDir, `${UDID}.plist`), garbage);
  t.same(await ask(t, d, readBUID), { MessageType: 'Result', Number: 5 }, 'ReadBUID: Result 5 (EIO)');
  t.ok(readFileSync(join(d.configDir, 'SystemConfiguration.plist')).equals(garbage), 'no new SystemBUID was written over the unreadable one');
  await logged(t, d, /ReadBUID failed: .*SystemConfiguration\.plist is corrupt/, 'the log names the file and what is wrong');
  t.same(await ask(t, d, readRecord), { MessageType: 'Result', Number: 2 }, 'ReadPairRecord: Result 2, not bytes no client can parse');
  await logged(t, d, new RegExp(`ReadPairRecord ${UDID} failed: pair record .*${UDID}\\.plist is corrupt`), 'the log names the record');
  t.same(await ask(t, d, saveRecord), { MessageType: 'Result', Number: 0 }, 'SavePairRecord replaces the corrupt record');
  t.same(recordOf(await ask(t, d, readRecord)), parseXmlBody(RECORD), 'which then reads back');
  t.same(await ask(t, d, deleteRecord), { MessageType: 'Result', Number: 0 }, 'DeletePairRecord works');
  await stillServes(t, d);
});

t.test('a directory in place of each file', async (t) => {
  const d = startDaemon(t, tempDir(t));
  await d.proc.ready();
  mkdirSync(join(d.configDir, 'SystemConfiguration.plist'));
  mkdirSync(join(d.configDir, `${UDID}.plist`));
  t.same(await ask(t, d, readBUID), { MessageType: 'Result', Number: 5 }, 'ReadBUID: Result 5');
  await logged(t, d, /ReadBUID failed: cannot read \S*SystemConfiguration\.plist: \S*SystemConfiguration\.plist is not a regular file/, 'the log says which file is not a regular file');
  t.same(await ask(t, d, readRecord), { MessageType: 'Result', Number: 2 }, 'ReadPairRecord: Result 2');
  t.same(await ask(t, d, saveRecord), { MessageType: 'Result', Number: 2 }, 'SavePairRecord: Result 2 (as usbmuxd answers a failed write)');
  t.same(await ask(t, d, deleteRecord), { MessageType: 'Result', Number: 2 }, 'DeletePairRecord: Result 2');
  await logged(t, d, new RegExp(`SavePairRecord ${UDID} failed: cannot save pair record`), 'the failed save is logged');
  t.same(readdirSync(join(d.configDir, `${UDID}.plist`)), [], 'the directory is left as it was');
  await stillServes(t, d);
});

const nobody = (() => {
  try {
    return lookupAccount('nobody');
  } catch {
    return undefined;
  }
})();

t.test('a directory of mode 000 under a daemon running as nobody', { skip: !asRoot ? 'needs root, to start the daemon as nobody (-U)' : !nobody ? 'no user nobody' : false }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o711);  // nobody must reach its config dir under this root-owned temp dir
  const d = startDaemon(t, dir, ['-U', 'nobody']);
  await d.proc.ready();
  await d.proc.stderr.waitFor(/running as nobody/, 10_000, d.proc.exited);
  chmodSync(d.configDir, 0o000);
  t.teardown(() => chmodSync(d.configDir, 0o700));
  t.same(await ask(t, d, readBUID), { MessageType: 'Result', Number: 5 }, 'ReadBUID: Result 5');
  await logged(t, d, /ReadBUID failed: cannot read \S*SystemConfiguration\.plist: EACCES/, 'the log names the file and EACCES');
  t.same(await ask(t, d, readRecord), { MessageType: 'Result', Number: 2 }, 'ReadPairRecord: Result 2');
  t.same(await ask(t, d, saveRecord), { MessageType: 'Result', Number: 2 }, 'SavePairRecord: Result 2');
  t.same(await ask(t, d, deleteRecord), { MessageType: 'Result', Number: 2 }, 'DeletePairRecord: Result 2');
  await stillServes(t, d);
});

// The daemon runs in a mount namespace of its own, with a 64 KiB tmpfs on
// its config dir; the test fills it through /proc/<pid>/root, which shows
// that namespace's view.
const tmpfsSkip = !asRoot ? 'needs root, to mount a tmpfs in a mount namespace' : requireTool('unshare', 'util-linux');

t.test('a full tmpfs', { skip: tmpfsSkip }, async (t) => {
  const dir = tempDir(t);
  const configDir = join(dir, 'lockdown');
  mkdirSync(configDir);
  const mountThenExec = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=64k,mode=0700 tmpfs "$0" && exec "$@"', configDir];
  const d = startDaemon(t, dir, [], mountThenExec);
  await d.proc.ready();
  t.same(await ask(t, d, saveRecord), { MessageType: 'Result', Number: 0 }, 'a record is saved while there is room');
  const inside = `/proc/${d.proc.pid}/root${configDir}`;
  const filler = openSync(join(inside, 'filler'), 'w');
  try {
    const block = Buffer.alloc(4096, 1);
    for (;;) writeSync(filler, block);
  } catch (err) {
    t.equal((err as NodeJS.ErrnoException).code, 'ENOSPC', 'the tmpfs is full');
  } finally {
    closeSync(filler);
  }
  t.same(await ask(t, d, readBUID), { MessageType: 'Result', Number: 5 }, 'ReadBUID, which must create SystemConfiguration.plist: Result 5');
  await logged(t, d, /ReadBUID failed: cannot write \S*SystemConfiguration\.plist: ENOSPC/, 'the log names the file and ENOSPC');
  const changed = Buffer.from(xmlPlist({ HostID: 'C0FFEE00-0000-4000-8000-000000000002', SystemBUID: 'B0D1E5-TEST' }));
  t.same(await ask(t, d, { ...saveRecord, PairRecordData: changed }), { MessageType: 'Result', Number: 2 }, 'SavePairRecord: Result 2');
  t.same(recordOf(await ask(t, d, readRecord)), parseXmlBody(RECORD), 'the record the failed save would have replaced is intact');
  t.same(readdirSync(inside).sort(), [`${UDID}.plist`, 'filler'], 'no temp file is left behind');
  t.same(await ask(t, d, deleteRecord), { MessageType: 'Result', Number: 0 }, 'DeletePairRecord frees what it can');
  await stillServes(t, d);
});
