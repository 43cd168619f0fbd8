// What a pcapng stream from tsmuxd's capture says about itself, read as it
// passes through (tsmuxd capture): packets, interfaces, secrets, and the
// drops its Interface Statistics Blocks report at the end. Only block
// headers and ISB options are read; a block's length is checked before it
// is skipped, and a stream that is not pcapng stops the count, not the copy.

const SHB = 0x0a0d0d0a;
const IDB = 1;
const ISB = 5;
const EPB = 6;
const DSB = 0x0a;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const ISB_IFDROP = 5;
/** No tsmuxd block comes near this (a packet is at most 64 KiB + headers). */
const MAX_BLOCK_BYTES = 1 << 20;

export interface CaptureCounts {
  packets: number;
  interfaces: number;
  secrets: number;
  /** Summed over the statistics blocks; undefined until one arrives. */
  dropped?: number;
  /** Why counting stopped, if the stream was not what we expect. */
  broken?: string;
}

export class PcapngSummary {
  readonly counts: CaptureCounts = { packets: 0, interfaces: 0, secrets: 0 };
  private pending: Buffer = Buffer.alloc(0);
  private littleEndian = true;

  push(chunk: Buffer): void {
    if (this.counts.broken) return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let at = 0;
    while (this.pending.length - at >= 12) {
      const type = this.pending.readUInt32LE(at);
      if (type === SHB) {
        const magic = this.pending.readUInt32LE(at + 8);
        if (magic !== BYTE_ORDER_MAGIC && magic !== 0x4d3c2b1a) return this.stop('bad byte-order magic');
        this.littleEndian = magic === BYTE_ORDER_MAGIC;
      }
      const length = this.u32(at + 4);
      if (length < 12 || length % 4 !== 0 || length > MAX_BLOCK_BYTES) return this.stop(`a block length of ${length}`);
      if (this.pending.length - at < length) break;
      this.block(this.u32(at), at, length);
      at += length;
    }
    this.pending = this.pending.subarray(at);
  }

  private u32(at: number): number {
    return this.littleEndian ? this.pending.readUInt32LE(at) : this.pending.readUInt32BE(at);
  }

  private stop(why: string): void {
    this.counts.broken = why;
    this.pending = Buffer.alloc(0);
  }

  private block(type: number, at: number, length: number): void {
    if (type === EPB) this.counts.packets++;
    else if (type === IDB) this.counts.interfaces++;
    else if (type === DSB) this.counts.secrets++;
    else if (type === ISB) this.counts.dropped = (this.counts.dropped ?? 0) + this.isbDrops(at + 20, at + length - 4);
  }

  /** isb_ifdrop from the options between `from` and `to`. */
  private isbDrops(from: number, to: number): number {
    for (let at = from; at + 4 <= to; ) {
      const code = this.littleEndian ? this.pending.readUInt16LE(at) : this.pending.readUInt16BE(at);
      const len = this.littleEndian ? this.pending.readUInt16LE(at + 2) : this.pending.readUInt16BE(at + 2);
      if (code === 0) break;
      if (code === ISB_IFDROP && len === 8 && at + 12 <= to) {
        return Number(this.littleEndian ? this.pending.readBigUInt64LE(at + 4) : this.pending.readBigUInt64BE(at + 4));
      }
      at += 4 + ((len + 3) & ~3);
    }
    return 0;
  }
}
