// go-ios's userspace-tunnel preamble (reference tunnel-wifi-remote §1.4): a
// client of a tunnel's local listener first sends 16 bytes of IPv6
// destination and a 4-byte little-endian port, then the stream itself. The
// daemon's native listener reads it; clients (and the tests) write it here.
import { parseIpv6 } from './ipv6.js';

export const TUNNEL_PREAMBLE_SIZE = 20;

export function encodeTunnelPreamble(address: string, port: number): Buffer {
  const bytes = parseIpv6(address);
  if (!bytes) throw new RangeError(`'${address}' is not an IPv6 address`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port ${port} is not in 1..65535`);
  const preamble = Buffer.alloc(TUNNEL_PREAMBLE_SIZE);
  bytes.copy(preamble, 0);
  preamble.writeUInt32LE(port, 16);
  return preamble;
}
