// Malformed and hostile client input: every case gets a clear answer (a
// Result or a close), the daemon stays up, and bystanders (an open echo pipe,
// a listener, a fresh client's ListDevices) are unaffected after each case.
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import creator from 'bplist-creator';
import t, { type Test } from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import {
  binaryConnect,
  binaryResult,
  frame,
  hex,
  plistRequest,
  RawClient,
  startDaemon,
  tempDir,
  within,
  type DaemonSetup,
  type Dict,
  type XmlValue,
} from './helpers/usbmuxd-harness.js';

let setup: DaemonSetup;
let deviceId: number;
let outer: string;
let echo: RawClient;
let listener: RawClient;

t.before(async () => {
  const root = tempDir(t);
  outer = join(root, 'outer');
  mkdirSync(outer);
  setup = await startDaemon(t, { sims: 1, configDir: join(outer, 'lockdown') });
  deviceId = setup.daemon.devices.visible()[0].deviceId;
  echo = await RawClient.open(t, setup.socketPath);
  echo.send(binaryConnect(1, deviceId, 7));
  if (!(await echo.read(20)).equals(binaryResult(1, 0))) throw new Error('the bystander echo pipe did not connect');
  listener = await RawClient.open(t, setup.socketPath);
  listener.send(plistRequest(1, { MessageType: 'Listen' }));
  await listener.readPlist();
  await listener.readPlist();
});

/** The daemon answers a fresh client, and the bystanders noticed nothing. */
async function unaffected(t: Test, what: string): Promise<void> {
  const devices = await within(new UsbmuxClient({ address: setup.address, timeoutMs: 5000 }).listDevices(), 10_000, 'ListDevices');
  t.equal(devices.length, 1, `after ${what}: a fresh client's ListDevices still sees the phone`);
  const token = randomBytes(24);
  echo.send(token);
  t.equal(hex(await echo.read(token.length, 10_000)), hex(token), `after ${what}: the open echo pipe still echoes`);
  t.notOk(listener.closed, `after ${what}: the listener is still connected`);
  t.equal(listener.pending, 0, `after ${what}: the listener got no stray message`);
}

/** Sends `bytes` on a fresh socket; returns the socket. */
async function fresh(t: Test, bytes?: Buffer): Promise<RawClient> {
  const c = await RawClient.open(t, setup.socketPath);
  if (bytes) c.send(bytes);
  return c;
}

async function plistResult(c: RawClient, tag: number): Promise<Dict> {
  const r = await c.readPlist();
  if (r.frame.tag !== tag) throw new Error(`reply tag ${r.frame.tag}, expected ${tag}`);
  if (r.frame.version !== 1) throw new Error(`reply version ${r.frame.version}, expected 1`);
  return r.dict;
}

t.test('a truncated header, then close', async (t) => {
  const c = await fresh(t, frame(0, 3, 1).subarray(0, 10));
  c.socket.end();
  t.ok(await c.waitClosed(10_000), 'the connection ends');
  t.equal(c.received, 0, 'nothing is sent back for half a header');
  await unaffected(t, 'a truncated header');
});

t.test('a header split over two writes is still one request', async (t) => {
  const listen = frame(0, 3, 5);
  const c = await fresh(t, listen.subarray(0, 10));
  t.equal((await c.drain(300)).length, 0, 'no answer to the first 10 bytes');
  t.notOk(c.closed, 'and no close either');
  c.send(listen.subarray(10));
  t.equal(hex(await c.read(20)), hex(binaryResult(5, 0)), 'the completed Listen is answered');
  c.destroy();
  await unaffected(t, 'a split header');
});

for (const [name, length] of [
  ['a huge length (0x7fffffff)', 0x7fffffff],
  ['a length just over 64 KiB', 0x10001],
  ['a length below 16 (8)', 8],
  ['a length of 0', 0],
] as const) {
  t.test(`${name} closes the client`, async (t) => {
    const c = await fresh(t, frame(1, 8, 1, Buffer.alloc(0), length));
    t.ok(await c.waitClosed(10_000), 'the daemon closes the connection');
    t.equal(c.received, 0, 'without answering');
    await unaffected(t, name);
  });
}

t.test('version 7 gets a binary BADVERSION (6) and the connection is kept', async (t) => {
  const c = await fresh(t, frame(7, 8, 0x77));
  t.equal(hex(await c.read(20)), hex(binaryResult(0x77, 6)), 'binary Result 6 with the request tag');
  c.send(frame(7, 3, 0x78, Buffer.from('some body the daemon must skip')));
  t.equal(hex(await c.read(20)), hex(binaryResult(0x78, 6)), 'a version-7 message with a body: Result 6, the body skipped');
  t.notOk(c.closed, 'still connected');
  c.send(plistRequest(0x79, { MessageType: 'ListDevices' }));
  const list = await plistResult(c, 0x79);
  t.equal((list.DeviceList as unknown[]).length, 1, 'a following valid request works');
  c.destroy();
  await unaffected(t, 'version 7');
});

for (const [name, body] of [
  ['an unparsable plist', Buffer.from('<?xml version="1.0"?><plist><dict><key>MessageType</key><string>ListDev')],
  ['a body that is not XML at all', Buffer.from('MessageType = ListDevices;')],
  ['a plist that is not a dict', Buffer.from('<?xml version="1.0"?><plist version="1.0"><array><string>Listen</string></array></plist>')],
  ['a plist with no MessageType', Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>ProgName</key><string>x</string></dict></plist>')],
  ['a MessageType that is not a string', Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><integer>3</integer></dict></plist>')],
  ['an unknown MessageType', Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>FormatDisk</string></dict></plist>')],
  ['an empty body', Buffer.alloc(0)],
  // 9.5 ms of xmldom per request (48 ms loaded) before the node bound (MAX_REQUEST_NODES).
  ['64 KiB of 9,000 tiny elements', Buffer.from(`<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>ListDevices</string><key>x</key><array>${'<true/>'.repeat(9000)}</array></dict></plist>`)],
] as const) {
  t.test(`${name} answers Result 1 (BADCOMMAND)`, async (t) => {
    const c = await fresh(t, plistRequest(0x100, body));
    t.same(await plistResult(c, 0x100), { MessageType: 'Result', Number: 1 }, 'Result 1 with the tag');
    c.send(plistRequest(0x101, { MessageType: 'ReadBUID' }));
    t.match((await plistResult(c, 0x101)).BUID, /^[0-9A-F-]{36}$/, 'the connection still takes requests');
    c.destroy();
    await unaffected(t, name);
  });
}

t.test('a binary plist (bplist00) request body is accepted', async (t) => {
  const body = creator({ MessageType: 'ListDevices', ProgName: 'bplist-client', kLibUSBMuxVersion: 3 });
  t.equal(body.subarray(0, 8).toString('latin1'), 'bplist00');
  const c = await fresh(t, plistRequest(0x200, body));
  const r = await c.readPlist();
  t.equal(r.frame.tag, 0x200);
  t.match(r.frame.body.toString('utf8'), /^<\?xml /, 'the reply is XML');
  const list = r.dict.DeviceList as Dict[];
  t.equal(list.length, 1, 'ListDevices answered');
  t.equal(list[0].DeviceID, deviceId);
  c.send(plistRequest(0x201, creator({ MessageType: 'Bogus' })));
  t.same(await plistResult(c, 0x201), { MessageType: 'Result', Number: 1 }, 'an unknown bplist MessageType is Result 1');
  c.destroy();
  await unaffected(t, 'a bplist request');
});

t.test('a command after Listen: Result 1, then the daemon closes', async (t) => {
  const c = await fresh(t, plistRequest(1, { MessageType: 'Listen' }));
  t.same(await plistResult(c, 1), { MessageType: 'Result', Number: 0 }, 'Listen OK');
  t.equal((await c.readPlist()).dict.MessageType, 'Attached');
  c.send(plistRequest(2, { MessageType: 'ListDevices' }));
  t.same(await plistResult(c, 2), { MessageType: 'Result', Number: 1 }, 'ListDevices after Listen: Result 1');
  t.ok(await c.waitClosed(10_000), 'then the connection is closed');

  const b = await fresh(t, frame(0, 3, 1));
  t.equal(hex(await b.read(20)), hex(binaryResult(1, 0)));
  t.equal((await b.read(284)).readUInt32LE(8), 4);
  b.send(binaryConnect(2, deviceId, 7));
  t.equal(hex(await b.read(20)), hex(binaryResult(2, 1)), 'binary Connect after binary Listen: Result 1');
  t.ok(await b.waitClosed(10_000), 'then closed');
  await unaffected(t, 'a command after Listen');
});

t.test('pair-record ids cannot leave the config dir', async (t) => {
  const secret = join(outer, 'secret.plist');
  writeFileSync(secret, '<?xml version="1.0"?><plist version="1.0"><dict><key>k</key><string>secret</string></dict></plist>');
  const passwd = statSync('/etc/passwd');
  const before = { outer: readdirSync(outer).sort(), config: readdirSync(setup.configDir).sort(), secret: readFileSync(secret) };
  const record = Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>HostID</key><string>x</string></dict></plist>');
  const ids = ['../../etc/passwd', '../secret', '/etc/passwd', '00008101/../../../../etc/passwd', '..', '.', ''];
  let tag = 0x300;
  for (const id of ids) {
    const reqs: Record<string, XmlValue>[] = [
      { MessageType: 'ReadPairRecord', PairRecordID: id },
      { MessageType: 'DeletePairRecord', PairRecordID: id },
      { MessageType: 'SavePairRecord', PairRecordID: id, PairRecordData: record },
    ];
    for (const req of reqs) {
      const c = await fresh(t, plistRequest(++tag, req));
      const r = await plistResult(c, tag);
      t.same(r, { MessageType: 'Result', Number: 22 }, `${req.MessageType} ${JSON.stringify(id)}: Result 22 (EINVAL)`);
      c.destroy();
    }
  }
  t.same(readdirSync(outer).sort(), before.outer, 'no file appeared next to the config dir');
  t.same(readdirSync(setup.configDir).sort(), before.config, 'none inside it either');
  t.ok(readFileSync(secret).equals(before.secret), 'the file outside is untouched');
  const after = statSync('/etc/passwd');
  t.equal(after.mtimeMs, passwd.mtimeMs, '/etc/passwd not modified');
  t.equal(after.size, passwd.size);
  await unaffected(t, 'path traversal attempts');
});

t.test('SavePairRecord with a bad UDID or bad data answers 22', async (t) => {
  const record = Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>HostID</key><string>x</string></dict></plist>');
  const cases: [string, Record<string, string | number | Buffer>][] = [
    ['a UDID with bad characters', { PairRecordID: 'not-a-udid!', PairRecordData: record }],
    ['a too-short UDID', { PairRecordID: '0000-1111', PairRecordData: record }],
    ['a too-long UDID', { PairRecordID: 'A'.repeat(41), PairRecordData: record }],
    ['no PairRecordID', { PairRecordData: record }],
    ['a numeric PairRecordID', { PairRecordID: 12345, PairRecordData: record }],
    ['no PairRecordData', { PairRecordID: '00008101-0000000000000099' }],
    ['PairRecordData as a string', { PairRecordID: '00008101-0000000000000099', PairRecordData: 'not data' }],
    ['data that is not a plist', { PairRecordID: '00008101-0000000000000099', PairRecordData: Buffer.from('garbage garbage garbage') }],
    ['data shorter than 8 bytes', { PairRecordID: '00008101-0000000000000099', PairRecordData: Buffer.from('<a/>') }],
  ];
  let tag = 0x400;
  for (const [name, fields] of cases) {
    const c = await fresh(t, plistRequest(++tag, { MessageType: 'SavePairRecord', ...fields }));
    t.same(await plistResult(c, tag), { MessageType: 'Result', Number: 22 }, `${name}: Result 22`);
    c.destroy();
  }
  t.same(readdirSync(setup.configDir).filter((n) => n !== 'SystemConfiguration.plist'), [], 'no record was written');
  await unaffected(t, 'bad SavePairRecord requests');
});

t.test('Connect with a missing field', async (t) => {
  const c = await fresh(t, plistRequest(0x500, { MessageType: 'Connect', DeviceID: deviceId }));
  t.same(await plistResult(c, 0x500), { MessageType: 'Result', Number: 1 }, 'no PortNumber: Result 1');
  c.send(plistRequest(0x501, { MessageType: 'Connect', PortNumber: 0x0700 }));
  t.same(await plistResult(c, 0x501), { MessageType: 'Result', Number: 2 }, 'no DeviceID: Result 2');
  c.send(plistRequest(0x502, { MessageType: 'Connect', DeviceID: 'one', PortNumber: 0x0700 }));
  t.same(await plistResult(c, 0x502), { MessageType: 'Result', Number: 2 }, 'a string DeviceID: Result 2');
  c.send(plistRequest(0x503, { MessageType: 'Connect', DeviceID: deviceId, PortNumber: 0x0700 }));
  t.same(await plistResult(c, 0x503), { MessageType: 'Result', Number: 0 }, 'the same socket can still connect');
  c.send('after');
  t.equal((await c.read(5)).toString(), 'after');
  c.destroy();
  await unaffected(t, 'Connect with missing fields');
});

t.test('a request of exactly 64 KiB is accepted; one byte more closes', async (t) => {
  const xml = (pad: number) =>
    Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>MessageType</key><string>ListDevices</string>` +
      `<key>Padding</key><string>${'p'.repeat(pad)}</string></dict></plist>\n`);
  const base = xml(0).length;
  const exact = xml(0x10000 - 16 - base);
  const c = await fresh(t, plistRequest(0x600, exact));
  t.equal(plistRequest(0x600, exact).length, 0x10000, 'the request is 65536 bytes');
  t.equal(((await plistResult(c, 0x600)).DeviceList as unknown[]).length, 1, 'answered');
  c.destroy();
  const over = await fresh(t, plistRequest(0x601, xml(0x10000 - 16 - base + 1)));
  t.ok(await over.waitClosed(10_000), '65537 bytes: closed');
  t.equal(over.received, 0, 'without an answer');
  await unaffected(t, 'the 64 KiB boundary');
});

t.test('a request sent one byte per write is answered', async (t) => {
  const req = plistRequest(0x700, { MessageType: 'ListDevices' });
  const c = await fresh(t);
  for (const byte of req) {
    c.send(Buffer.from([byte]));
    await new Promise((r) => setImmediate(r));
  }
  t.equal(((await plistResult(c, 0x700)).DeviceList as unknown[]).length, 1, `${req.length} single-byte writes, one answer`);
  c.destroy();
  await unaffected(t, 'byte-by-byte writes');
});

t.test('hostile XML: external entities, entity expansion, deep nesting', async (t) => {
  const doc = (doctype: string, inner: string) =>
    Buffer.from(`<?xml version="1.0"?>\n<!DOCTYPE plist [${doctype}]>\n<plist version="1.0"><dict><key>MessageType</key><string>ReadPairRecord</string>` +
      `<key>PairRecordID</key>${inner}</dict></plist>`);
  const laughs = '<!ENTITY a "AAAAAAAAAA">' + Array.from({ length: 9 }, (_, i) => `<!ENTITY ${String.fromCharCode(98 + i)} "${`&${String.fromCharCode(97 + i)};`.repeat(10)}">`).join('');
  const cases: [string, Buffer][] = [
    ['an external entity (XXE)', doc('<!ENTITY xxe SYSTEM "file:///etc/passwd">', '<string>&xxe;</string>')],
    ['a billion-laughs expansion', doc(laughs, '<string>&j;</string>')],
    ['nesting 3000 arrays deep', Buffer.from(`<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>ListDevices</string><key>x</key>${'<array>'.repeat(3000)}${'</array>'.repeat(3000)}</dict></plist>`)],
  ];
  let tag = 0x800;
  for (const [name, body] of cases) {
    const started = Date.now();
    const c = await fresh(t, plistRequest(++tag, body));
    const r = await plistResult(c, tag);
    t.equal(r.MessageType, 'Result', `${name}: answered with a Result (${Date.now() - started} ms)`);
    t.not(r.Number, 0, `${name}: not a success`);
    t.notOk('PairRecordData' in r, `${name}: no file content leaks`);
    c.destroy();
  }
  await unaffected(t, 'hostile XML');
});

t.test('a record that is a symlink to a file outside is neither read nor written through', async (t) => {
  const target = join(outer, 'target.plist');
  const content = '<?xml version="1.0"?><plist version="1.0"><dict><key>k</key><string>outside</string></dict></plist>';
  writeFileSync(target, content);
  const udid = '00008101-00000000000000AA';
  const link = join(setup.configDir, `${udid}.plist`);
  symlinkSync(target, link);
  t.teardown(() => {
    try {
      unlinkSync(link);
    } catch {
      // already replaced or deleted
    }
  });
  const read = await fresh(t, plistRequest(0x900, { MessageType: 'ReadPairRecord', PairRecordID: udid }));
  const r = await plistResult(read, 0x900);
  t.notOk('PairRecordData' in r, `ReadPairRecord through a symlink does not return the target (got ${JSON.stringify(r)})`);
  const record = Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>HostID</key><string>new</string></dict></plist>');
  const save = await fresh(t, plistRequest(0x901, { MessageType: 'SavePairRecord', PairRecordID: udid, PairRecordData: record }));
  t.same(await plistResult(save, 0x901), { MessageType: 'Result', Number: 0 }, 'SavePairRecord succeeds');
  t.equal(readFileSync(target, 'utf8'), content, 'the file outside is unchanged');
  t.notOk(lstatSync(link).isSymbolicLink(), 'the record is now a regular file in the config dir');
  const del = await fresh(t, plistRequest(0x902, { MessageType: 'DeletePairRecord', PairRecordID: udid }));
  t.same(await plistResult(del, 0x902), { MessageType: 'Result', Number: 0 });
  t.equal(readFileSync(target, 'utf8'), content, 'still unchanged after Delete');
  await unaffected(t, 'a symlinked record');
});
