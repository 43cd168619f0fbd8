// IPv6 addresses as text and as 16 bytes: the CDTunnel handshake carries
// them as text, go-ios's preamble as bytes, and the checks on a device's
// answer (same /64, not multicast) need the bytes. A strict parser of our
// own: node's isIPv6 also takes zone ids ("fe80::1%eth0"), which no tunnel
// address may carry, and node has no text-to-bytes for IPv6.

export const IPV6_BYTES = 16;
/** The longest IPv6 text (eight full groups, or six and a dotted quad). */
const MAX_IPV6_TEXT = 45;

/** Colon-separated hex groups; a dotted quad only where it may be, at the very end of the address. */
function parseGroups(text: string, out: number[], quadAllowed: boolean): boolean {
  if (text === '') return true;
  const parts = text.split(':');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (quadAllowed && i === parts.length - 1 && part.includes('.')) {
      const quad = part.split('.');
      if (quad.length !== 4) return false;
      const octets = quad.map((q) => (/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(q) ? Number(q) : NaN));
      if (octets.some(Number.isNaN)) return false;
      out.push((octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!);
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return false;
    out.push(parseInt(part, 16));
  }
  return true;
}

/** The 16 bytes of an IPv6 address in text form, or undefined if it is not one (zone ids included). */
export function parseIpv6(text: string): Buffer | undefined {
  if (typeof text !== 'string' || text.length < 2 || text.length > MAX_IPV6_TEXT) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head: number[] = [];
  const tail: number[] = [];
  if (!parseGroups(halves[0]!, head, halves.length === 1)) return undefined;
  if (halves.length === 2 && !parseGroups(halves[1]!, tail, true)) return undefined;
  const groups = head.length + tail.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) return undefined;
  // "1::2" splits into "1" and "2"; ":1::" or "1:" leave an empty group, which parseGroups refused.
  const all = [...head, ...new Array<number>(8 - groups).fill(0), ...tail];
  const bytes = Buffer.alloc(IPV6_BYTES);
  all.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return bytes;
}

/** The canonical text of 16 bytes (RFC 5952: lower case, the longest run of zero groups as "::"). */
export function formatIpv6(bytes: Uint8Array): string {
  if (bytes.length !== IPV6_BYTES) throw new RangeError(`an IPv6 address is ${IPV6_BYTES} bytes, not ${bytes.length}`);
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[i * 2]! << 8) | bytes[i * 2 + 1]!);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** Do two addresses share their first 64 bits (one tunnel's /64)? */
export function sameSlash64(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 8; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isMulticast(address: Uint8Array): boolean {
  return address[0] === 0xff;
}

export function isUnspecified(address: Uint8Array): boolean {
  return address.every((b) => b === 0);
}

/** The prefix length of a netmask in IPv6 text, or undefined if its ones are not contiguous. */
export function netmaskPrefixLength(mask: Uint8Array): number | undefined {
  let length = 0;
  let ended = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >> bit) & 1;
      if (one && ended) return undefined;
      if (one) length++;
      else ended = true;
    }
  }
  return length;
}
