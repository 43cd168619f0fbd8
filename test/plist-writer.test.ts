// toXml writes XML plists itself (src/protocol/plist-xml-writer.ts) instead
// of through the plist package's build(), so that a start loads no
// xmlbuilder. What it writes must be build()'s bytes: checked here against
// build() itself on the values the daemon sends and on a few thousand random
// ones, and what XML cannot carry must still be refused.
import t from 'tap';
import * as plist from 'plist';

import { parsePlist, PlistError, toXml, type PlistValue } from '../src/protocol/plist-codec.js';
import { writeXmlPlist } from '../src/protocol/plist-xml-writer.js';
import { seededRandom } from './helpers/seeded-random.js';

const build = (v: unknown) => plist.build(v as plist.PlistValue, { indent: '\t' });

t.test('the shapes the daemon writes, as build() writes them', async (t) => {
  const values: unknown[] = [
    { MessageType: 'Result', Number: 0 },
    { MessageType: 'Attached', DeviceID: 3, Properties: { ConnectionSpeed: 480000000, ConnectionType: 'USB', DeviceID: 3, LocationID: 0x10002, ProductID: 0x12a8, SerialNumber: '00008110-001C2D3E4F5A6B7C', USBSerialNumber: '00008110001C2D3E4F5A6B7C' } },
    { DeviceList: [] },
    { A: 'x<&>"\'\r\n\ty', E: '', Arr: [], D: {}, N: 1, R: 1.5, Neg: -0, Big: 12345678901234567890n, T: true, F: false },
    { Dt: new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 678)), Data: Buffer.from('hello'), Empty: Buffer.alloc(0), View: new Uint8Array([1, 2, 3]).subarray(1) },
    { Nested: [{ a: [1, [2, []], {}] }], '': 'empty key', U: 'ü€😀\u0085\u2028\x7f', Small: 1e-7, Inf: Infinity, NaN: NaN },
    { skipped: undefined, alsoSkipped: null, kept: 1 },
    { allSkipped: undefined },
    'top',
    [],
    {},
    42,
    ']]> <![CDATA[ &amp; &#13;',
  ];
  // Messages by index: some values hold U+2028 and U+0085, which a TAP reader may take for line ends.
  values.forEach((v, i) => t.equal(writeXmlPlist(v), build(v), `value ${i}`));
});

/** A random plist value: strings drawn from every range XML allows, and the characters that need escaping. */
function randomValue(rnd: ReturnType<typeof seededRandom>, depth: number): PlistValue {
  const chars = ['a', ' ', '&', '<', '>', '"', "'", '\r', '\n', '\t', 'é', '€', '😀', '\u00a0', '\ud7ff', '\ue000', '\ufffd', ']]>', '&amp;'];
  const str = () => Array.from({ length: rnd.int(6) }, () => rnd.pick(chars)).join('');
  const kind = depth > 3 ? rnd.int(7) : rnd.int(9);
  switch (kind) {
    case 0:
      return str();
    case 1:
      return rnd.int(2) ? rnd.int(1 << 30) - (1 << 29) : (rnd.next() - 0.5) * 10 ** rnd.int(30);
    case 2:
      return BigInt(rnd.int(1 << 30)) * 2n ** 40n * (rnd.int(2) ? 1n : -1n);
    case 3:
      return rnd.int(2) === 1;
    case 4:
      return new Date(rnd.int(2 ** 31) * 1000 + rnd.int(1000));
    case 5:
      return Buffer.from(Array.from({ length: rnd.int(70) }, () => rnd.int(256)));
    case 6:
      return '';
    case 7:
      return Array.from({ length: rnd.int(4) }, () => randomValue(rnd, depth + 1));
    default: {
      const dict: Record<string, PlistValue> = {};
      for (let i = rnd.int(4); i > 0; i--) dict[str() || `k${i}`] = randomValue(rnd, depth + 1);
      return dict;
    }
  }
}

t.test('random values: the same bytes as build(), and they read back', async (t) => {
  const rnd = seededRandom(20);
  let mismatches = 0;
  for (let i = 0; i < 3000; i++) {
    const v = randomValue(rnd, 0);
    const ours = writeXmlPlist(v);
    if (ours !== build(v)) {
      if (++mismatches <= 3) t.equal(ours, build(v), `case ${i}`);
      continue;
    }
    t.doesNotThrow(() => parsePlist(Buffer.from(toXml(v))), `case ${i} reads back`, { diagnostic: false });
  }
  t.equal(mismatches, 0, 'no value written differently');
});

t.test('what XML 1.0 cannot carry is refused, as build() refused it', async (t) => {
  for (const bad of ['\u0001', 'a\u0000b', '\u000b', '\ud800', 'x\udc00', '\udc00', '\ufffe', '\uffff']) {
    const name = [...bad].map((c) => `U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(' ');
    t.throws(() => build({ s: bad }), `build() refused ${name}`);
    t.throws(() => toXml({ s: bad }), PlistError, `toXml refuses ${name}`);
    t.throws(() => toXml({ [bad]: 's' }), PlistError, `toXml refuses it in a key`);
  }
  t.throws(() => toXml({ s: 'a\u0001' }), /cannot encode as XML plist: a string holds U\+0001/);
  t.throws(() => toXml({ s: 'x\udc00' }), /U\+DC00/, 'the lone surrogate is named, not the character before it');
  t.doesNotThrow(() => toXml({ s: '😀\t\n\r' }), 'a surrogate pair, tab, LF and CR are fine');
});
