// The Connect fast path (src/server/flat-request.ts) must give exactly what
// the general plist parser gives, or step aside (undefined) for it.
import creator from 'bplist-creator';
import t from 'tap';

import { parsePlist } from '../src/protocol/plist-codec.js';
import { MAX_REQUEST_NODES, parseFlatRequest, parseRequestPlist } from '../src/server/flat-request.js';
import { connectRequest } from '../src/bench/connect-rate.js';

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n';
const wrap = (inner: string) => Buffer.from(`${HEAD}<dict>\n${inner}</dict>\n</plist>\n`, 'utf8');

// What libusbmuxd 2.x writes for Connect (libplist's tab indentation).
const LIBUSBMUXD_CONNECT = wrap(
  '\t<key>BundleID</key>\n\t<string>org.libimobiledevice.ideviceinfo</string>\n' +
    '\t<key>ClientVersionString</key>\n\t<string>libusbmuxd 2.0.2</string>\n' +
    '\t<key>MessageType</key>\n\t<string>Connect</string>\n' +
    '\t<key>ProgName</key>\n\t<string>ideviceinfo</string>\n' +
    '\t<key>kLibUSBMuxVersion</key>\n\t<integer>3</integer>\n' +
    '\t<key>DeviceID</key>\n\t<integer>1</integer>\n' +
    '\t<key>PortNumber</key>\n\t<integer>32498</integer>\n',
);

const ACCEPTED: Array<[string, Buffer]> = [
  ['libusbmuxd Connect', LIBUSBMUXD_CONNECT],
  ['tsmuxd bench Connect', connectRequest(3, 62078).subarray(16)],
  ['Listen', wrap('<key>MessageType</key><string>Listen</string>')],
  ['empty string forms', wrap('<key>A</key><string></string><key>B</key><string/>')],
  ['booleans', wrap('<key>t</key><true/><key>f</key><false/>')],
  ['negative, zero, leading zeros, negative zero', wrap('<key>a</key><integer>-42</integer><key>b</key><integer>0</integer><key>c</key><integer>007</integer><key>d</key><integer>-0</integer>')],
  ['15-digit integer', wrap('<key>n</key><integer>999999999999999</integer>')],
  ['non-ASCII text', wrap('<key>ProgName</key><string>Приложение 🚀</string>')],
  ['duplicate key', wrap('<key>k</key><string>first</string><key>k</key><string>second</string>')],
  ['no prolog', Buffer.from('<plist version="1.0"><dict><key>MessageType</key><string>ReadBUID</string></dict></plist>')],
  ['text with > and quotes', wrap(`<key>s</key><string>a > b "c" 'd'</string>`)],
  ['empty dict', wrap('')],
];

const DECLINED: Array<[string, Buffer]> = [
  ['an entity', wrap('<key>s</key><string>a &amp; b</string>')],
  ['a nested dict', wrap('<key>d</key><dict><key>x</key><integer>1</integer></dict>')],
  ['an array', wrap('<key>a</key><array><string>x</string></array>')],
  ['data', wrap('<key>d</key><data>AAEC</data>')],
  ['a 16-digit integer', wrap('<key>n</key><integer>1234567890123456</integer>')],
  ['a comment', wrap('<!-- c --><key>k</key><string>v</string>')],
  ['CDATA', wrap('<key>k</key><string><![CDATA[v]]></string>')],
  ['CRLF in text', wrap('<key>k</key><string>a\r\nb</string>')],
  ['__proto__ key', wrap('<key>__proto__</key><string>x</string>')],
  ['binary plist', Buffer.from('bplist00\xd0\x08\x00\x00\x00\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09', 'latin1')],
  ['trailing junk', Buffer.concat([wrap('<key>k</key><string>v</string>'), Buffer.from('<x/>')])],
  ['a BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), wrap('<key>k</key><string>v</string>')])],
  ['invalid UTF-8', wrap('<key>k</key><string>\u00ff</string>').fill(0xff, HEAD.length + 30, HEAD.length + 31)],
  // Found by the TypeScript fuzzer: JavaScript's \s is wider than XML's
  // whitespace, and nothing may precede an XML declaration.
  ['a space before the XML declaration', Buffer.concat([Buffer.from(' '), wrap('<key>k</key><string>v</string>')])],
  ['a vertical tab between prolog parts', Buffer.from(wrap('<key>k</key><string>v</string>').toString().replace('?>\n', '?>\v'))],
  ['a form feed between entries', wrap('<key>a</key><string>1</string>\f<key>b</key><string>2</string>')],
  ['a no-break space after the dict', Buffer.from(wrap('').toString().replace('</dict>\n', '</dict>\u00a0'))],
];

t.test('flat requests parse exactly as the general parser parses them', async (t) => {
  for (const [name, body] of ACCEPTED) {
    const fast = parseFlatRequest(body);
    t.ok(fast, `${name}: taken by the fast path`);
    t.same(fast, parsePlist(body), `${name}: same dict as the general parser`);
    if (fast) t.equal(Object.getPrototypeOf(fast), Object.prototype, `${name}: a plain object`);
  }
  t.equal(Object.is(parseFlatRequest(wrap('<key>d</key><integer>-0</integer>'))!.d, -0), false, '-0 reads as 0, as BigInt parsing gives');
});

t.test('anything outside the subset is left to the general parser', async (t) => {
  for (const [name, body] of DECLINED) t.equal(parseFlatRequest(body), undefined, name);
  for (const name of ['a space before the XML declaration', 'a vertical tab between prolog parts']) {
    t.throws(() => parsePlist(DECLINED.find(([n]) => n === name)![1]), `${name}: the general parser refuses it`);
  }
});

// A deterministic mutational sweep: whatever the fast path accepts, the general
// parser must accept with the same result.
t.test('mutated requests: the fast path never disagrees with the general parser', async (t) => {
  let seed = 0x5eed1234;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const alphabet = Buffer.from('<>/&;"\'!?[]-=\r\n\t 0123456789abcdefkeystringintegrdtupl\x00\x80\xc3\xa9');
  const seeds = ACCEPTED.map(([, b]) => b);
  let accepted = 0;
  let disagreements = 0;
  for (let i = 0; i < 40_000; i++) {
    const body = Buffer.from(seeds[i % seeds.length]);
    const edits = 1 + Math.floor(random() * 3);
    let bytes = body;
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(random() * bytes.length);
      const op = random();
      const byte = Buffer.from([alphabet[Math.floor(random() * alphabet.length)]]);
      if (op < 0.4) bytes[at] = byte[0];
      else if (op < 0.7) bytes = Buffer.concat([bytes.subarray(0, at), byte, bytes.subarray(at)]);
      else bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    }
    const fast = parseFlatRequest(bytes);
    if (fast === undefined) continue;
    accepted++;
    let general: unknown;
    try {
      general = parsePlist(bytes);
    } catch (err) {
      general = err;
    }
    if (JSON.stringify(general) !== JSON.stringify(fast)) {
      disagreements++;
      if (disagreements <= 3) t.fail(`disagreement on ${JSON.stringify(bytes.toString('latin1'))}: fast ${JSON.stringify(fast)}, general ${String(general instanceof Error ? general.message : JSON.stringify(general))}`);
    }
  }
  t.equal(disagreements, 0, `no disagreements (${accepted} mutants taken by the fast path)`);
  t.ok(accepted > 500, 'the sweep exercised the fast path');
});

t.test('client requests are bounded to MAX_REQUEST_NODES plist nodes, on both paths', async (t) => {
  // Short entries, so the dict at the bound is inside the fast path's 16 KiB.
  const entries = (n: number) => Array.from({ length: n }, (_, i) => `<key>${i}</key><true/>`).join('');
  const atBound = (MAX_REQUEST_NODES - 1) / 2 - 1;  // plus MessageType: dict + 2 per entry = MAX_REQUEST_NODES - 1
  const fits = wrap(`<key>MessageType</key><string>Listen</string>${entries(atBound)}`);
  const over = wrap(`<key>MessageType</key><string>Listen</string>${entries(atBound + 1)}`);
  t.match(parseFlatRequest(fits), { MessageType: 'Listen' }, 'the fast path takes a flat dict within the bound');
  t.match(parseRequestPlist(fits), { MessageType: 'Listen' });
  t.equal(parseFlatRequest(over), undefined, 'past it the fast path steps aside');
  t.throws(() => parseRequestPlist(over), { code: 'EPLIST', message: /more than 1024 elements/ }, 'and the general parser refuses it');
  t.match(parsePlist(over), { MessageType: 'Listen' }, 'the bound is the server\'s: parsePlist alone takes it');

  const array = (n: number) => wrap(`<key>MessageType</key><string>Listen</string><key>x</key><array>${'<true/>'.repeat(n)}</array>`);
  t.throws(() => parseRequestPlist(array(9000)), { message: /more than 1024 elements/ }, '9,000 tiny elements are refused before xmldom sees them');
  t.match(parseRequestPlist(array(1000)), { MessageType: 'Listen' }, 'a nested array within the bound is fine');

  const bplist = (n: number) => creator({ MessageType: 'Listen', x: Array.from({ length: n }, () => true) });
  t.match(parseRequestPlist(bplist(1000)), { MessageType: 'Listen' }, 'a bplist within the bound');
  t.throws(() => parseRequestPlist(bplist(2000)), { message: /more than 1024 values/ }, 'a bplist past it');
});
