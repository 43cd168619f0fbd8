// The fast path for what nearly every client sends: a flat XML plist dict of
// strings, small integers and booleans (Connect, Listen, ReadBUID, ...). The
// general parser (src/protocol/plist-codec.ts, on xmldom) costs tens of µs per
// request, which on a Connect-heavy load (Appium, farms polling phones) is a
// large share of the daemon's CPU. This accepts a strict subset only: no
// entities, no CDATA, no comments, no carriage returns, no nesting, integers
// of at most 15 digits. Anything else returns undefined and goes to the
// general parser, so the answer for any input is the general parser's answer
// (test/flat-request.test.ts checks that both agree).
import { parsePlist, type PlistDict, type PlistValue } from '../protocol/plist-codec.js';

// XML whitespace is space, tab, CR and LF only (JavaScript's \s also takes
// \v, \f, NBSP, U+2028 ...), and nothing may come before an XML declaration:
// the general parser rejects both, so the fast path must not accept them.
// CR is left out as well (see above).
const WS = '[ \\t\\n]';
const PROLOG = new RegExp(
  String.raw`(?:<\?xml version="1\.0"(?: encoding="(?:UTF|utf)-8")?${WS}*\?>${WS}*|${WS}*)` +
    String.raw`(?:<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1\.0//EN" "http://www\.apple\.com/DTDs/PropertyList-1\.0\.dtd">${WS}*)?` +
    String.raw`<plist(?: version="1\.0")?>${WS}*<dict>${WS}*`,
  'y',
);
const ENTRY = new RegExp(
  String.raw`<key>([^<&\r]*)<\/key>${WS}*(?:<string>([^<&\r]*)<\/string>|(<string\/>)|<integer>(-?\d{1,15})<\/integer>|<(true|false)\/>)${WS}*`,
  'y',
);
const EPILOG = new RegExp(String.raw`<\/dict>${WS}*<\/plist>${WS}*$`, 'y');

/**
 * The most plist nodes a client request may hold (keys count). Real requests
 * have a dozen or two. A 64 KiB request of 9,335 tiny elements cost the
 * general parser 9.5 ms of the daemon's only JS thread (48 ms on a loaded
 * machine), which a local client could repeat at will; refused by the tag
 * count it costs 0.07 ms, and 1,000 elements parse in 0.6 ms.
 */
export const MAX_REQUEST_NODES = 1024;

/** A client's plist request: the fast path, else the general parser within MAX_REQUEST_NODES. */
export function parseRequestPlist(body: Buffer): PlistValue {
  return parseFlatRequest(body) ?? parsePlist(body, { maxNodes: MAX_REQUEST_NODES });
}

export function parseFlatRequest(body: Buffer): PlistDict | undefined {
  if (body.length === 0 || body.length > 16384 || body[0] === 0x62 /* 'b': bplist00 */) return undefined;
  const text = body.toString('utf8');
  if (text.includes('\uFFFD') || text.charCodeAt(0) === 0xfeff) return undefined;  // bad UTF-8 or a BOM: let the general parser judge
  PROLOG.lastIndex = 0;
  if (!PROLOG.test(text)) return undefined;
  const dict: PlistDict = {};
  let at = PROLOG.lastIndex;
  for (let entries = 1; ; entries++) {
    ENTRY.lastIndex = at;
    const m = ENTRY.exec(text);
    if (!m) break;
    // Past the bound the general parser gives the answer (a refusal).
    if (1 + 2 * entries > MAX_REQUEST_NODES) return undefined;
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
