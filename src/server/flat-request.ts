// The fast path for what nearly every client sends: a flat XML plist dict of
// strings, small integers and booleans (Connect, Listen, ReadBUID, ...). The
// general parser (src/pairing/plist-codec.ts, on xmldom) costs tens of µs per
// request, which on a Connect-heavy load (Appium, farms polling phones) is a
// large share of the daemon's CPU. This accepts a strict subset only: no
// entities, no CDATA, no comments, no carriage returns, no nesting, integers
// of at most 15 digits. Anything else returns undefined and goes to the
// general parser, so the answer for any input is the general parser's answer
// (test/flat-request.test.ts checks that both agree).
import type { PlistDict } from '../pairing/plist-codec.js';

const PROLOG = new RegExp(
  String.raw`\s*(?:<\?xml version="1\.0"(?: encoding="(?:UTF|utf)-8")?\s*\?>\s*)?` +
    String.raw`(?:<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1\.0//EN" "http://www\.apple\.com/DTDs/PropertyList-1\.0\.dtd">\s*)?` +
    String.raw`<plist(?: version="1\.0")?>\s*<dict>\s*`,
  'y',
);
const ENTRY =
  /<key>([^<&\r]*)<\/key>\s*(?:<string>([^<&\r]*)<\/string>|(<string\/>)|<integer>(-?\d{1,15})<\/integer>|<(true|false)\/>)\s*/y;
const EPILOG = /<\/dict>\s*<\/plist>\s*$/y;

export function parseFlatRequest(body: Buffer): PlistDict | undefined {
  if (body.length === 0 || body.length > 16384 || body[0] === 0x62 /* 'b': bplist00 */) return undefined;
  const text = body.toString('utf8');
  if (text.includes('\uFFFD') || text.charCodeAt(0) === 0xfeff) return undefined;  // bad UTF-8 or a BOM: let the general parser judge
  PROLOG.lastIndex = 0;
  if (!PROLOG.test(text)) return undefined;
  const dict: PlistDict = {};
  let at = PROLOG.lastIndex;
  for (;;) {
    ENTRY.lastIndex = at;
    const m = ENTRY.exec(text);
    if (!m) break;
    const key = m[1];
    if (key === '__proto__') return undefined;
    if (m[2] !== undefined) dict[key] = m[2];
    else if (m[3] !== undefined) dict[key] = '';
    else if (m[4] !== undefined) dict[key] = Number(m[4]) || 0;  // never -0
    else dict[key] = m[5] === 'true';
    at = ENTRY.lastIndex;
  }
  EPILOG.lastIndex = at;
  return EPILOG.test(text) ? dict : undefined;
}
