// How a phone's mDNS record names the hosts it is paired with (reference
// tunnel-wifi-remote §3.1). Classic: the instance label is
// `<Wi-Fi MAC>@<address>`, and the MAC matches a pair record's
// WiFiMACAddress. With a private Wi-Fi address (iOS 26.4 and later) the MAC
// is random, and the TXT record carries `identifier` and one `authTag` per
// paired host (`authTag`, `authTag#0`, `authTag#1`, ...):
//   K = HKDF-SHA512(ikm = HostID as UTF-8, salt = "", info = "", L = 32)
//   authTag = base64(HMAC-SHA256(K, identifier)[0..8])
// The tag names the host, not the phone: every phone paired under one
// HostID carries the same tag for a given identifier.
import { createHmac, hkdfSync } from 'node:crypto';

const KEY_LENGTH = 32;
const TAG_BYTES = 8;
/** An identifier longer than this is not a phone's; it is not hashed. */
export const MAX_IDENTIFIER_LENGTH = 128;
/** At most this many authTag keys are read from one record. */
export const MAX_AUTH_TAGS = 16;

export function authTag(hostId: string, identifier: string): string {
  const key = Buffer.from(hkdfSync('sha512', Buffer.from(hostId, 'utf8'), Buffer.alloc(0), Buffer.alloc(0), KEY_LENGTH));
  return createHmac('sha256', key).update(identifier, 'utf8').digest().subarray(0, TAG_BYTES).toString('base64');
}

/** The authTag values of a TXT record (`authtag`, `authtag#0`...; keys already lower-cased), capped. */
export function authTagsOf(txt: Map<string, string>): string[] {
  const tags: string[] = [];
  for (const [key, value] of txt) {
    if (key === 'authtag' || /^authtag#\d{1,3}$/.test(key)) tags.push(value);
    if (tags.length >= MAX_AUTH_TAGS) break;
  }
  return tags;
}

/** The MAC before `@` in an instance label, normalized (lower case, colons), or undefined. */
export function macOfInstance(label: string): string | undefined {
  const at = label.indexOf('@');
  if (at <= 0) return undefined;
  return normalizeMac(label.slice(0, at));
}

export function normalizeMac(text: string): string | undefined {
  const m = /^([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})$/i.exec(text.trim());
  return m ? m.slice(1).map((x) => x.toLowerCase().padStart(2, '0')).join(':') : undefined;
}
