// Byte sizes as people type them ("64M", "1GiB", "512K"), for the CLI and
// the benchmarks alike.

/** "64M", "1.5GiB", "4096" -> bytes; throws RangeError for anything else or less than 1 byte. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw new RangeError(`not a size: '${text}' (e.g. 64M)`);
  const scale = { '': 1, K: 1 << 10, M: 1 << 20, G: 1 << 30 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  const n = Math.floor(Number(m[1]) * scale);
  if (n < 1) throw new RangeError(`size must be at least 1 byte: '${text}'`);
  return n;
}
