// A hand-driven phone for the hostile benchmark's attacker process: it plugs
// into the daemon's virtual cable, answers VERSION as a v2 phone, and then
// sends whatever the attack wants. Reads poll the cable without blocking, so
// the attacker's own usbmuxd clients keep running in the same process. (The
// tests have their own in test/helpers; bench code cannot import test code.)
import type { DecodedPacket } from '../../src/native/addon.js';
import { nativeTesting, type RawCable } from '../../src/native/testing.js';
import { iphoneDescriptor } from '../../src/sim/descriptor.js';
import { serialToUdid } from '../../src/native/config-select.js';

const wire = nativeTesting().wire;

export const TH_SYN = 0x02;
export const TH_RST = 0x04;
export const TH_ACK = 0x10;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Tcp {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  /** In bytes; scaled by 256 on the wire. */
  window: number;
}

export class RawPhone {
  readonly cable: RawCable;
  readonly udid: string;
  private txSeq = 0;
  private closed = false;

  private constructor(path: string, readonly serial: string) {
    this.cable = new wire.RawCable('connect', path);
    this.udid = serialToUdid(serial);
  }

  /** Plugs in and completes VERSION/SETUP. */
  static async plug(path: string, serial: string): Promise<RawPhone> {
    const phone = new RawPhone(path, serial);
    phone.cable.send(wire.encodeCableDescriptor(iphoneDescriptor({ serial })));
    if (!(await phone.next(20_000))) throw new Error('no VERSION from the daemon');
    phone.cable.send(wire.encodePacket({ version: 1, protocol: 0, payload: Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]) }));
    if (!(await phone.next(20_000))) throw new Error('no SETUP from the daemon');
    return phone;
  }

  /** The next mux packet (ZLPs skipped), or null after `timeoutMs`. */
  async next(timeoutMs: number): Promise<DecodedPacket | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.closed) return null;
      const b = this.cable.recv(0);
      if (b && b.length > 0) return wire.decodePacket(b, b.readUInt32BE(0) === 0 ? 1 : 2);
      if (b) continue;
      if (Date.now() >= deadline) return null;
      await sleep(1);
    }
  }

  /** Reads until a packet passes `match` (others are dropped), or null after `timeoutMs`. */
  async expect(match: (p: DecodedPacket) => boolean, timeoutMs: number): Promise<DecodedPacket | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = await this.next(Math.max(0, deadline - Date.now()));
      if (!p || match(p)) return p;
    }
  }

  packet(protocol: number, tcp?: Tcp, payload?: Buffer): Buffer {
    const t = tcp && { ...tcp, window: tcp.window >> 8 };
    return wire.encodePacket({ version: 2, protocol, txSeq: this.txSeq++ & 0xffff, tcp: t, payload });
  }

  sendTcp(tcp: Tcp, payload?: Buffer): void {
    this.cable.send(this.packet(6, tcp, payload));
  }

  /** One transfer of several packets (what a phone's bulk IN can carry). */
  sendBatch(packets: Buffer[]): void {
    this.cable.send(Buffer.concat(packets));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cable.close();
  }
}
