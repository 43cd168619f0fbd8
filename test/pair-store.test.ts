// The pair-record store and its plist codec against a real filesystem:
// UDID gating, modes under any umask, SystemBUID creation, XML and binary
// saves (64-bit integers exact), errno mapping, atomic replacement.
import t, { type Test } from 'tap';
import creator from 'bplist-creator';
import { promises as fs, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

import {
  PairRecordError,
  PairRecordStore,
  PlistError,
  defaultConfigDir,
  isValidUdid,
  parsePlist,
  toXml,
  type PlistDict,
} from '../src/pairing/index.js';

const OLD_UDID = '0123456789abcdef0123456789ABCDEF01234567';
const NEW_UDID = '00008101-000A1B2C3D4E5F60';
const UUID_V4_UPPER = /^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/;
const BIG = 2n ** 60n + 1n; // not representable as a double

const XML_RECORD = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>HostID</key>
	<string>5F8A1C22-6C4B-4F0E-9D0B-2A8F6B1C9E10</string>
	<key>SystemBUID</key>
	<string>0E1C4F3A-7B2D-4C8E-A5F1-3D6B9A0C2E47</string>
	<key>HostCertificate</key>
	<data>LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t</data>
	<key>EscrowBag</key>
	<data>AAECAwQF</data>
	<key>Counter</key>
	<integer>9007199254740993</integer>
</dict>
</plist>
`);

/** Every path under root (relative), so a stray file anywhere shows up. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      out.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk('');
  return out.sort();
}

function mode(path: string): number {
  return statSync(path).mode & 0o7777;
}

function withUmask(t: Test, mask: number): void {
  const saved = process.umask(mask);
  t.teardown(() => {
    process.umask(saved);
  });
}

async function newStore(t: Test): Promise<{ base: string; dir: string; store: PairRecordStore }> {
  const base = t.testdir({});
  // Nested so that `..`-style escapes would still land inside base, where
  // tree() can see them.
  const dir = join(base, 'a', 'b', 'lockdown');
  return { base, dir, store: await PairRecordStore.open({ dir }) };
}

async function tempNames(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((n) => n.endsWith('.tmp'));
}

t.test('isValidUdid accepts exactly ^[0-9A-Fa-f-]{24,40}$', async (t) => {
  const valid = [OLD_UDID, NEW_UDID, '000081010000000000000000', 'a'.repeat(40), '-'.repeat(24), 'ABCDEF-abcdef-0123456789'];
  const invalid: unknown[] = [
    '',
    '../../etc/passwd',
    'a/b',
    '..',
    '0'.repeat(23),
    '0'.repeat(41),
    `${OLD_UDID}\0`,
    `${NEW_UDID}\n`,
    ` ${NEW_UDID}`,
    `${NEW_UDID.slice(0, -1)}G`,
    '00008101-000A1B2C3D4E5F6０', // fullwidth zero
    '00008101-000A1B2C3D4E5F6é',
    '00008101_000A1B2C3D4E5F60',
    `${NEW_UDID}.plist`,
    'SystemConfiguration',
    undefined,
    null,
    12345678901234567890123456,
  ];
  for (const s of valid) t.equal(isValidUdid(s), true, `valid: ${s}`);
  for (const s of invalid) t.equal(isValidUdid(s), false, `invalid: ${JSON.stringify(s)}`);
});

t.test('the directory is 0700 and files 0600 whatever the umask', async (t) => {
  for (const mask of [0, 0o022, 0o277]) {
    await t.test(`umask ${mask.toString(8)}`, async (t) => {
      withUmask(t, mask);
      const { dir, store } = await newStore(t);
      t.equal(mode(dir), 0o700, 'created dir');
      await store.save(NEW_UDID, XML_RECORD);
      t.equal(mode(join(dir, `${NEW_UDID}.plist`)), 0o600, 'record');
      await store.save(NEW_UDID, XML_RECORD);
      t.equal(mode(join(dir, `${NEW_UDID}.plist`)), 0o600, 'replaced record');
      await store.systemBUID();
      t.equal(mode(join(dir, 'SystemConfiguration.plist')), 0o600, 'SystemConfiguration.plist');
    });
  }
});

t.test('an existing directory and its records are tightened on open', async (t) => {
  withUmask(t, 0);
  const dir = t.testdir({
    [`${OLD_UDID}.plist`]: XML_RECORD.toString(),
    'SystemConfiguration.plist': toXml({ SystemBUID: 'LEGACY-BUID' }),
    'notes.txt': 'not ours',
  });
  await fs.chmod(dir, 0o2775); // what usbmuxd leaves behind
  await fs.chmod(join(dir, `${OLD_UDID}.plist`), 0o644);
  await fs.chmod(join(dir, 'SystemConfiguration.plist'), 0o666);
  await fs.chmod(join(dir, 'notes.txt'), 0o644);
  const store = await PairRecordStore.open({ dir });
  t.equal(mode(dir), 0o700);
  t.equal(mode(join(dir, `${OLD_UDID}.plist`)), 0o600);
  t.equal(mode(join(dir, 'SystemConfiguration.plist')), 0o600);
  t.equal(mode(join(dir, 'notes.txt')), 0o644, 'files that are not records are left alone');
  t.equal(await store.systemBUID(), 'LEGACY-BUID', 'an existing SystemBUID is kept verbatim');
  t.same(await store.read(OLD_UDID), XML_RECORD, 'an existing record is read verbatim');

  await fs.chmod(dir, 0o500);
  await PairRecordStore.open({ dir });
  t.equal(mode(dir), 0o700, 'a narrower mode is widened to 0700 too');
});

t.test('with uid/gid the directory is chowned and 0770', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  withUmask(t, 0o022);
  const dir = t.testdir({ [`${NEW_UDID}.plist`]: XML_RECORD.toString() });
  const store = await PairRecordStore.open({ dir, uid: 4343, gid: 4242 });
  const st = statSync(dir);
  t.equal(st.uid, 4343);
  t.equal(st.gid, 4242);
  t.equal(mode(dir), 0o770);
  const existing = statSync(join(dir, `${NEW_UDID}.plist`));
  t.same([existing.uid, existing.gid, existing.mode & 0o7777], [4343, 4242, 0o600], 'existing record handed over');
  await store.save(OLD_UDID, XML_RECORD);
  const created = statSync(join(dir, `${OLD_UDID}.plist`));
  t.same([created.uid, created.gid, created.mode & 0o7777], [4343, 4242, 0o600], 'new record owned alike');
});

t.test('defaultConfigDir', async (t) => {
  const getuid = process.getuid;
  const xdg = process.env.XDG_DATA_HOME;
  t.teardown(() => {
    process.getuid = getuid;
    if (xdg === undefined) delete process.env.XDG_DATA_HOME;
    else process.env.XDG_DATA_HOME = xdg;
  });
  process.getuid = () => 0;
  t.equal(defaultConfigDir(), '/var/lib/lockdown', 'root uses the usbmuxd location');
  process.getuid = () => 1000;
  process.env.XDG_DATA_HOME = '/xdg/data';
  t.equal(defaultConfigDir(), '/xdg/data/tsmuxd/lockdown');
  process.env.XDG_DATA_HOME = 'relative/ignored';
  t.match(defaultConfigDir(), /\/\.local\/share\/tsmuxd\/lockdown$/, 'a relative XDG_DATA_HOME is ignored');
  delete process.env.XDG_DATA_HOME;
  t.match(defaultConfigDir(), /\/\.local\/share\/tsmuxd\/lockdown$/);
});

t.test('SystemBUID', async (t) => {
  const { dir, store } = await newStore(t);
  const first = store.systemBUID();
  t.equal(store.systemBUID(), first, 'callers share one pending promise');
  const calls = await Promise.all([first, ...Array.from({ length: 7 }, () => store.systemBUID())]);
  const buid = calls[0]!;
  t.match(buid, UUID_V4_UPPER, 'an uppercase UUIDv4');
  t.same(new Set(calls).size, 1, 'concurrent first calls share one value');
  const file = await fs.readFile(join(dir, 'SystemConfiguration.plist'));
  t.match(file.toString(), /^<\?xml/, 'stored as XML');
  t.same(parsePlist(file), { SystemBUID: buid }, 'persisted');
  const reopened = await PairRecordStore.open({ dir });
  t.equal(await reopened.systemBUID(), buid, 'stable across reopen');

  await t.test('two stores racing on a fresh directory agree', async (t) => {
    const dir = join(t.testdir({}), 'lockdown');
    const stores = await Promise.all(Array.from({ length: 4 }, () => PairRecordStore.open({ dir })));
    const values = await Promise.all(stores.map((s) => s.systemBUID()));
    t.equal(new Set(values).size, 1, `one value: ${values.join(', ')}`);
    t.same(parsePlist(await fs.readFile(join(dir, 'SystemConfiguration.plist'))), { SystemBUID: values[0] });
    t.same(await tempNames(dir), []);
  });

  await t.test('a file without the key gets one and keeps its other keys', async (t) => {
    const dir = t.testdir({ 'SystemConfiguration.plist': toXml({ Other: 'kept' }) });
    const buid = await (await PairRecordStore.open({ dir })).systemBUID();
    t.match(buid, UUID_V4_UPPER);
    t.same(parsePlist(await fs.readFile(join(dir, 'SystemConfiguration.plist'))), { Other: 'kept', SystemBUID: buid });
  });

  await t.test('a corrupt file is reported, not overwritten, and retried later', async (t) => {
    const dir = t.testdir({ 'SystemConfiguration.plist': 'garbage, not a plist' });
    const store = await PairRecordStore.open({ dir });
    await t.rejects(store.systemBUID(), { name: 'PairRecordError', code: 'EIO', errno: 5 });
    t.equal(await fs.readFile(join(dir, 'SystemConfiguration.plist'), 'utf8'), 'garbage, not a plist');
    await fs.writeFile(join(dir, 'SystemConfiguration.plist'), toXml({ SystemBUID: 'FIXED' }));
    t.equal(await store.systemBUID(), 'FIXED', 'the failure was not memoised');
  });
});

t.test('save XML, read back XML with the same values', async (t) => {
  const { store } = await newStore(t);
  await store.save(NEW_UDID, XML_RECORD);
  const bytes = await store.read(NEW_UDID);
  t.ok(Buffer.isBuffer(bytes));
  t.match(bytes.toString('utf8'), /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<!DOCTYPE plist/);
  const record = parsePlist(bytes) as PlistDict;
  t.same(record, parsePlist(XML_RECORD));
  t.equal(record.Counter, 9007199254740993n, 'an XML integer past 2^53 survives exactly');
  t.same(await store.readRecord(NEW_UDID), record);
  t.same(record.EscrowBag, Buffer.from([0, 1, 2, 3, 4, 5]));
});

t.test('save binary, read back XML with the same values', async (t) => {
  const { store } = await newStore(t);
  const original = {
    HostID: 'HOST-ID',
    DeviceCertificate: Buffer.from('-----BEGIN CERTIFICATE-----\n'),
    Big: BIG,
    Negative: -(2n ** 62n),
    Max: 2n ** 64n - 1n,
    Small: 42,
    Flag: true,
    When: new Date('2024-05-06T07:08:09Z'),
    List: ['a', 1, Buffer.from([0xff])],
  };
  const binary = creator(original);
  t.equal(binary.subarray(0, 8).toString('latin1'), 'bplist00');
  await store.save(OLD_UDID, binary);
  const bytes = await store.read(OLD_UDID);
  t.match(bytes.toString('utf8'), /^<\?xml/, 'always stored as XML');
  t.match(bytes.toString('utf8'), /<integer>1152921504606846977<\/integer>/);
  const record = await store.readRecord(OLD_UDID);
  t.equal(typeof record.Big, 'bigint');
  t.equal(record.Big, BIG, 'the 64-bit integer is exact');
  t.equal(record.Negative, -(2n ** 62n));
  t.equal(record.Max, 2n ** 64n - 1n);
  t.equal(record.Small, 42, 'small integers stay numbers');
  t.ok(Buffer.isBuffer(record.DeviceCertificate), 'data comes back as a Buffer');
  t.same(record, original);
  t.same(parsePlist(binary), record, 'both encodings normalise to the same value');
});

t.test('read of a missing record is ENOENT', async (t) => {
  const { store } = await newStore(t);
  const err = await store.read(NEW_UDID).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof PairRecordError);
  t.match(err, { code: 'ENOENT', errno: 2 });
  await t.rejects(store.readRecord(NEW_UDID), { code: 'ENOENT', errno: 2 });
});

t.test('invalid UDIDs are EINVAL and create nothing anywhere', async (t) => {
  const { base, store } = await newStore(t);
  const before = tree(base);
  const bad = ['../../etc/passwd', '../../../escape', 'a/b', '', '0'.repeat(41), `${NEW_UDID}\0`, '../SystemConfiguration', 'üñí'];
  for (const udid of bad) {
    for (const [op, run] of [
      ['read', () => store.read(udid)],
      ['readRecord', () => store.readRecord(udid)],
      ['save', () => store.save(udid, XML_RECORD)],
      ['delete', () => store.delete(udid)],
    ] as [string, () => Promise<unknown>][]) {
      await t.rejects(run(), { name: 'PairRecordError', code: 'EINVAL', errno: 22 }, `${op} ${JSON.stringify(udid)}`);
    }
  }
  t.same(tree(base), before, 'no file appeared under the store or its parents');
  await t.rejects(fs.stat('/etc/passwd.plist'), { code: 'ENOENT' });
});

t.test('save rejects data that is not a plist dict with EINVAL', async (t) => {
  const { dir, store } = await newStore(t);
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['under 8 bytes', Buffer.from('<plist>')],
    ['garbage', Buffer.from('this is not a plist at all')],
    ['truncated XML', XML_RECORD.subarray(0, XML_RECORD.length - 20)],
    ['an XML array', Buffer.from(toXml(['HostID', 'x']))],
    ['an XML string', Buffer.from(toXml('just a string'))],
    ['a binary array', creator(['a', 'b'])],
    ['bplist00 garbage', Buffer.concat([Buffer.from('bplist00'), Buffer.alloc(40, 0xff)])],
    ['OpenStep text', Buffer.from('{ HostID = "x"; }')],
  ];
  for (const [what, data] of cases) {
    await t.rejects(store.save(NEW_UDID, data), { code: 'EINVAL', errno: 22 }, what);
  }
  await t.rejects(store.save(NEW_UDID, 'a string' as unknown as Buffer), { code: 'EINVAL' }, 'not bytes');
  t.same(await fs.readdir(dir), [], 'nothing was written');
});

t.test('atomic replacement', async (t) => {
  const { dir, store } = await newStore(t);
  await Promise.all(
    Array.from({ length: 10 }, (_, i) => store.save(NEW_UDID, Buffer.from(toXml({ HostID: `writer-${i}`, Pad: 'x'.repeat(10000) })))),
  );
  const winner = await store.readRecord(NEW_UDID);
  t.match(winner.HostID, /^writer-\d$/, 'concurrent saves leave one whole record');
  t.same(await tempNames(dir), [], 'no temp files left behind');
  t.same(await fs.readdir(dir), [`${NEW_UDID}.plist`]);

  // What a writer killed between its open and its rename leaves behind.
  const stale = join(dir, `.tsmuxd-${OLD_UDID}.plist.0123456789ab.tmp`);
  await fs.writeFile(stale, '<?xml version="1.0"?><plist><dict><key>Half');
  t.same(await store.list(), [NEW_UDID], 'list ignores the temp file');
  t.same((await store.readRecord(NEW_UDID)).HostID, winner.HostID);
  await t.rejects(store.read(OLD_UDID), { code: 'ENOENT' }, 'the half-written record does not exist');
  await store.save(OLD_UDID, XML_RECORD);
  t.same(await store.read(OLD_UDID), Buffer.from(toXml(parsePlist(XML_RECORD))));

  await PairRecordStore.open({ dir });
  t.ok(await fs.stat(stale), 'a fresh temp file may belong to a live writer and is kept');
  const old = new Date(Date.now() - 10 * 60_000);
  await fs.utimes(stale, old, old);
  await PairRecordStore.open({ dir });
  await t.rejects(fs.stat(stale), { code: 'ENOENT' }, 'an old one is removed on open');
});

t.test('a directory removed under the store is recreated on save', async (t) => {
  const { dir, store } = await newStore(t);
  await fs.rm(dir, { recursive: true });
  t.same(await store.list(), []);
  await store.save(NEW_UDID, XML_RECORD);
  t.equal(mode(dir), 0o700);
  t.same(await store.list(), [NEW_UDID]);
});

t.test('delete', async (t) => {
  const { store } = await newStore(t);
  await store.save(NEW_UDID, XML_RECORD);
  await store.delete(NEW_UDID);
  await t.rejects(store.read(NEW_UDID), { code: 'ENOENT', errno: 2 });
  await t.rejects(store.delete(NEW_UDID), { name: 'PairRecordError', code: 'ENOENT', errno: 2 }, 'a second delete');
  t.same(await store.list(), []);
});

t.test('list returns exactly the saved UDIDs', async (t) => {
  const { dir, store } = await newStore(t);
  t.same(await store.list(), []);
  await store.systemBUID();
  const udids = [NEW_UDID, OLD_UDID, '00008030-001A2B3C4D5E6F70'];
  for (const u of udids) await store.save(u, XML_RECORD);
  await fs.writeFile(join(dir, 'notes.txt'), 'x');
  await fs.writeFile(join(dir, `${'0'.repeat(41)}.plist`), 'x');
  await fs.mkdir(join(dir, `${'1'.repeat(40)}.plist`));
  await fs.writeFile(join(dir, `.tsmuxd-${NEW_UDID}.plist.aaaaaaaaaaaa.tmp`), 'x');
  t.same(await store.list(), [...udids].sort());
  await store.delete(OLD_UDID);
  t.same(await store.list(), [NEW_UDID, '00008030-001A2B3C4D5E6F70'].sort());
});

t.test('symlinks at a record name are never followed', async (t) => {
  const { base, dir, store } = await newStore(t);
  const secret = join(base, 'secret.plist');
  await fs.writeFile(secret, toXml({ Secret: 'outside' }));
  await fs.symlink(secret, join(dir, `${NEW_UDID}.plist`));
  t.same(await store.list(), [], 'a link is not listed');
  await t.rejects(store.read(NEW_UDID), { code: 'EIO', errno: 5 }, 'read refuses the link');
  await store.save(NEW_UDID, XML_RECORD);
  t.same(parsePlist(await fs.readFile(secret)), { Secret: 'outside' }, 'save replaced the link, not its target');
  t.ok((await fs.lstat(join(dir, `${NEW_UDID}.plist`))).isFile());
  await fs.symlink(secret, join(dir, `${OLD_UDID}.plist`));
  await store.delete(OLD_UDID);
  t.ok(await fs.stat(secret), 'delete removed the link, not its target');
});

t.test('plist codec', async (t) => {
  const errors: unknown[] = [];
  const saved = console.error;
  console.error = (...args: unknown[]) => {
    errors.push(args);
  };
  t.teardown(() => {
    console.error = saved;
  });
  for (const bad of ['garbage', '<plist><dict><key>a</key><string>&nope;</string></dict></plist>', '<plist><dict/></plist>junk<', '<plist><dict><key>a</key><integer>12abc</integer></dict></plist>']) {
    t.throws(() => parsePlist(Buffer.from(bad)), PlistError, bad);
  }
  t.same(errors, [], "the XML parser's complaints about client input are not printed");
  console.error = saved;

  t.same(parsePlist(Buffer.from('<plist><dict><key>h</key><integer>0x1F</integer><key>n</key><integer>-7</integer></dict></plist>')), { h: 31, n: -7 });
  t.same(
    parsePlist(Buffer.from('<plist><dict><key>s</key><string><![CDATA[<integer>99999999999999999999</integer>]]></string></dict></plist>')),
    { s: '<integer>99999999999999999999</integer>' },
    'integer-looking CDATA text stays a string',
  );
  t.same(parsePlist(Buffer.from('<plist><array><integer>-99999999999999999999</integer></array></plist>')), [-99999999999999999999n]);
  t.same(parsePlist(Buffer.from('\uFEFF<plist><dict><key>a</key><null/></dict></plist>')), {}, 'BOM skipped, null dropped');

  t.throws(() => toXml({ a: null as unknown as string }), PlistError, 'null is refused, not dropped');
  t.throws(() => toXml({ a: 'bell\u0007' }), PlistError, 'characters XML cannot carry');
  const cyclic: PlistDict = {};
  cyclic.self = cyclic;
  t.throws(() => toXml(cyclic), PlistError);
  const xml = toXml({ b: 2n ** 63n, d: new Uint8Array([1, 2]), u: undefined as unknown as string });
  t.match(xml, /<integer>9223372036854775808<\/integer>/);
  t.match(xml, /<data>AQI=<\/data>/);
  t.notMatch(xml, /<key>u<\/key>/, 'undefined dict values are omitted');
  t.match(xml, /<\/plist>\n$/);
});

/** A bplist00 from raw objects (one-byte offsets and references), top object first. */
function bplistOf(objects: number[][]): Buffer {
  const head = Buffer.from('bplist00', 'latin1');
  const offsets: number[] = [];
  let at = head.length;
  for (const o of objects) {
    offsets.push(at);
    at += o.length;
  }
  const trailer = Buffer.alloc(32);
  trailer[6] = 1;
  trailer[7] = 1;
  trailer.writeBigUInt64BE(BigInt(objects.length), 8);
  trailer.writeBigUInt64BE(0n, 16);
  trailer.writeBigUInt64BE(BigInt(at), 24);
  return Buffer.concat([head, ...objects.map((o) => Buffer.from(o)), Buffer.from(offsets), trailer]);
}

// Found by the TypeScript fuzzer (test/fuzz/ts): bplist-parser follows the
// object graph blindly, so these cost a stack overflow, 2^40 values or a
// 100-million-step loop before the structural check turned them away.
t.test('binary plists with hostile object graphs are PlistErrors, fast', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['an array that contains itself', bplistOf([[0xa1, 0]])],
    ['a dict whose value is the dict', bplistOf([[0xd1, 1, 0], [0x51, 0x6b]])],
    ['40 arrays each holding the next twice', bplistOf([...Array.from({ length: 40 }, (_, i) => [0xa2, i + 1, i + 1]), [0x09]])],
    ['an array claiming 100 million entries', bplistOf([[0xaf, 0x12, 0x05, 0xf5, 0xe1, 0x00]])],
    ['a reference past the object table', bplistOf([[0xa1, 7]])],
    ['arrays nested 200 deep', bplistOf([...Array.from({ length: 200 }, (_, i) => [0xa1, i + 1]), [0x09]])],
  ];
  for (const [name, bytes] of cases) {
    const t0 = performance.now();
    t.throws(() => parsePlist(bytes), PlistError, name);
    t.ok(performance.now() - t0 < 50, `${name}: rejected quickly`);
  }
  t.same(parsePlist(bplistOf([[0xa2, 1, 1], [0x51, 0x78]])), ['x', 'x'], 'a shared (uniqued) string is fine');
});

t.test('toXml writes integral doubles past 2^53 as digits that read back', async (t) => {
  // A bplist real of 1e300, or a 16-byte UID, reads as such a number; plist
  // wrote it as <integer>1e+300</integer>, which nothing can parse.
  for (const n of [1e21, 1.4330739329556124e36, -1e300]) {
    const back = parsePlist(Buffer.from(toXml({ n, UID: { UID: n } }), 'utf8')) as PlistDict;
    t.equal(back.n, BigInt(n), `${n} reads back as the same integer`);
    t.same(back.UID, { UID: BigInt(n) });
  }
  t.match(toXml({ r: 0.5, i: 7 }), /<real>0.5<\/real>[\s\S]*<integer>7<\/integer>/, 'other numbers unchanged');
});

t.test('deeply nested XML is refused before the XML parser recurses into it', async (t) => {
  const nested = (n: number) => Buffer.from(`<plist>${'<array>'.repeat(n)}${'</array>'.repeat(n)}</plist>`);
  for (const n of [1000, 20000]) {
    const t0 = performance.now();
    t.throws(() => parsePlist(nested(n)), { name: 'PlistError', message: /nested too deeply/ }, `${n} levels`);
    t.ok(performance.now() - t0 < 100, `${n} levels: rejected quickly`);
  }
  t.doesNotThrow(() => parsePlist(nested(100)), '100 levels still parse');
  t.same(parsePlist(Buffer.from('<plist><!-- <a><a><a> --><dict><key>k</key><string><![CDATA[<b><b>]]></string></dict></plist>')), { k: '<b><b>' });
});
