// The device role (the simulated phone) must be as strict as a real phone:
// messages end with a short transfer or a ZLP, its window is a hard limit, an
// established connection takes ACK alone, and it says why it resets. Each
// test drives the HOST side by hand over a raw cable.
import { join } from 'node:path';

import t from 'tap';

import type { DecodedPacket } from '../src/native/addon.js';
import { ECHO_PORT } from '../src/protocol/sim-ports.js';
import { startPeer, type Peer } from '../src/sim/peer.js';
import {
  controlText,
  KiB,
  PacketPort,
  pattern,
  PROTO_CONTROL,
  PROTO_SETUP,
  PROTO_TCP,
  PROTO_VERSION,
  TH_ACK,
  TH_FIN,
  TH_PSH,
  TH_RST,
  TH_SYN,
} from './helpers/flow-helpers.js';
import { tempDir, wire } from './helpers/harness.js';

type TestLike = { teardown(fn: () => void | Promise<void>): void };

interface Conn {
  sport: number;
  dport: number;
  /** Our next sequence number. */
  seq: number;
  /** The next device byte we expect (what we ACK). */
  ack: number;
  /** The window field we advertise (bytes >> 8). */
  window: number;
  synAck: DecodedPacket;
  /** The last ACK and window (in bytes) the device sent on this connection. */
  devAck: number;
  devWin: number;
}

/** A hand-driven host on the listening end of a cable, with a phone on the other. */
class HandHost {
  readonly controls: { type: number; text: string }[] = [];
  private readonly conns: Conn[] = [];
  private nextSport = 1;
  constructor(
    readonly port: PacketPort,
    readonly peer: Peer,
  ) {}

  /** The next packet passing `match`; CONTROL lines on the way are recorded. */
  async expect(what: string, match: (p: DecodedPacket) => boolean, timeoutMs = 5000, skipped: DecodedPacket[] = []) {
    const p = await this.port.expect(
      what,
      (p) => {
        this.note(p);
        return match(p);
      },
      timeoutMs,
      skipped,
    );
    return p;
  }

  /** Everything that arrives within ms; CONTROL lines are recorded too. */
  async collect(ms: number): Promise<DecodedPacket[]> {
    const all = await this.port.collect(ms);
    for (const p of all) this.note(p);
    return all;
  }

  /** Records CONTROL lines and each connection's latest ACK and window. */
  note(p: DecodedPacket | null): void {
    if (!p) return;
    if (p.protocol === PROTO_CONTROL) this.controls.push(controlText(p));
    for (const c of this.conns) {
      if (isFor(p, c.sport, c.dport)) {
        c.devAck = p.tcp!.ack;
        c.devWin = p.tcp!.window << 8;
      }
    }
  }

  async control(what: string, match: (c: { type: number; text: string }) => boolean, timeoutMs = 5000) {
    const seen = this.controls.find(match);
    if (seen) return seen;
    const p = await this.expect(what, (p) => p.protocol === PROTO_CONTROL && match(controlText(p)), timeoutMs);
    return controlText(p);
  }

  syn(dport: number, window = 0x200): number {
    const sport = this.nextSport++;
    this.port.sendTcp({ sport, dport, seq: 0, ack: 0, flags: TH_SYN, window });
    return sport;
  }

  /** SYN, SYN|ACK, ACK. */
  async open(dport: number, window = 0x200): Promise<Conn> {
    const sport = this.syn(dport, window);
    const synAck = await this.expect(`SYN|ACK for port ${dport}`, (p) => isFor(p, sport, dport));
    if (synAck.tcp!.flags !== (TH_SYN | TH_ACK)) {
      throw new Error(`expected SYN|ACK, got flags 0x${synAck.tcp!.flags.toString(16)}`);
    }
    this.port.sendTcp({ sport, dport, seq: 1, ack: 1, flags: TH_ACK, window });
    const c: Conn = { sport, dport, seq: 1, ack: 1, window, synAck, devAck: synAck.tcp!.ack, devWin: synAck.tcp!.window << 8 };
    this.conns.push(c);
    return c;
  }

  /** Sends one data packet on `c` (flags ACK unless told) and advances its sequence. */
  send(c: Conn, payload: Buffer, options: { flags?: number; zlp?: boolean; advance?: boolean } = {}): Buffer {
    const bytes = this.port.sendTcp(
      { sport: c.sport, dport: c.dport, seq: c.seq, ack: c.ack, flags: options.flags ?? TH_ACK, window: c.window },
      payload,
      options.zlp ?? true,
    );
    if (options.advance ?? true) c.seq += payload.length;
    return bytes;
  }

  /** Reads `n` bytes of data the device sends on `c`, ACKing it; throws on RST. */
  async receive(c: Conn, n: number, timeoutMs = 5000): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const p = await this.expect(`${n - got} more bytes on port ${c.dport}`, (p) => isFor(p, c.sport, c.dport), timeoutMs);
      if (p.tcp!.flags & TH_RST) throw new Error(`RST from the device: ${p.payload.toString()}`);
      if (p.payload.length === 0) continue;
      if (p.tcp!.seq !== c.ack) throw new Error(`device data at seq ${p.tcp!.seq}, expected ${c.ack}`);
      parts.push(p.payload);
      got += p.payload.length;
      c.ack += p.payload.length;
      this.port.sendTcp({ sport: c.sport, dport: c.dport, seq: c.seq, ack: c.ack, flags: TH_ACK, window: c.window });
    }
    return Buffer.concat(parts);
  }

  async echo(c: Conn, payload: Buffer): Promise<Buffer> {
    this.send(c, payload);
    return this.receive(c, payload.length);
  }
}

function isFor(p: DecodedPacket, sport: number, dport: number): boolean {
  return p.protocol === PROTO_TCP && p.tcp!.dport === sport && p.tcp!.sport === dport;
}

const versionBody = (major: number) => Buffer.from([0, 0, 0, major, 0, 0, 0, 0, 0, 0, 0, 0]);

/** A phone (startPeer) on a cable whose host end this test drives: VERSION and SETUP done. */
async function phone(t: TestLike, options: { window?: number } = {}) {
  const dir = tempDir(t);
  const path = join(dir, 'cable');
  const listener = new wire.RawCable('listen', path);
  t.teardown(() => listener.close());
  const peer = await startPeer({ cable: path, window: options.window });
  t.teardown(() => peer.close());
  const cable = listener.accept(5000);
  if (!cable) throw new Error('the phone never connected to the cable');
  const port = new PacketPort(cable);
  t.teardown(() => port.close());

  const first = await port.nextTransfer(5000);
  if (!first) throw new Error('no descriptor from the phone');
  const descriptor = wire.decodeCableDescriptor(first);

  port.sendTransfer(wire.encodePacket({ version: 1, protocol: PROTO_VERSION, payload: versionBody(2) }));
  const version = await port.expect('the VERSION reply', (p) => p.protocol === PROTO_VERSION);
  port.version = 2;
  port.sendTransfer(port.encode(PROTO_SETUP, { payload: Buffer.from([0x07]) }));
  const host = new HandHost(port, peer);
  const info = await host.control('a CONTROL line after SETUP', () => true);
  return { host, port, peer, descriptor, version, info };
}

t.test('handshake and an echo round trip, driven by hand', async (t) => {
  const { host, port, peer, descriptor, version, info } = await phone(t);
  t.equal(descriptor.serial, peer.serial, 'the phone described itself first');
  t.equal(version.length, 20, 'the VERSION reply has a v1 header');
  t.equal(version.payload.readUInt32BE(0), 2, 'the phone speaks mux v2');
  t.equal(info.type, 7, 'SETUP draws an info CONTROL line');
  t.match(info.text, /debug level to 7/);

  const c = await host.open(ECHO_PORT);
  const sa = c.synAck.tcp!;
  t.equal(sa.seq, 0, 'SYN|ACK seq 0');
  t.equal(sa.ack, 1, 'SYN|ACK ack 1');
  t.equal(sa.window << 8, 131072, 'a phone advertises 131072 bytes');
  t.equal(c.synAck.magic, 0xfeedface);
  const msg = Buffer.from('hello, phone');
  t.equal((await host.echo(c, msg)).toString(), msg.toString(), 'echoed');
  const established = await host.control('the session-established line', (l) => /established/.test(l.text));
  t.equal(established.type, 7);
  t.same(port.zlpViolations, [], 'the phone ends its multiple-of-512 transfers with ZLPs');
});

t.test('a 512-multiple packet without a ZLP is glued to the next and rejected', async (t) => {
  const { host, port } = await phone(t);
  const c = await host.open(ECHO_PORT);
  t.equal((await host.echo(c, Buffer.from('before'))).toString(), 'before');

  const seqBefore = c.seq;
  const a = host.send(c, Buffer.alloc(512 - 36, 0x61), { zlp: false });
  t.equal(a.length, 512, 'packet A is exactly one 512-byte USB packet');
  const b = host.send(c, Buffer.alloc(20, 0x62));
  const err = await host.control('a CONTROL error line', (l) => l.type === 3);
  t.equal(err.type, 3, 'reported as an error (type 3)');
  t.match(err.text, /packet size mismatch/);
  t.match(err.text, `header says 512, message is ${512 + b.length}`);

  const after = await host.collect(400);
  const tcp = after.filter((p) => isFor(p, c.sport, c.dport));
  t.same(
    tcp.map((p) => p.payload.toString()),
    [],
    'neither packet was delivered (nothing echoed, no RST)',
  );

  // The connection goes on from where it was before the glued message.
  c.seq = seqBefore;
  t.equal((await host.echo(c, Buffer.from('recovered'))).toString(), 'recovered', 'later data is delivered from the old sequence');
  t.same(port.zlpViolations, []);
});

t.test('with ZLPs, multiple-of-512 packets are delivered in order', async (t) => {
  const { host, port } = await phone(t);
  const c = await host.open(ECHO_PORT);
  // Two bursts of back-to-back packets, each burst within the 128 KiB window.
  const bursts = [
    [512 - 36, 1024 - 36, 16384 - 36, 49152 - 36],
    [100, 65535 - 36, 2048 - 36],
  ];
  let wantZlp = 0;
  for (const [i, sizes] of bursts.entries()) {
    const payloads = sizes.map((n, j) => pattern(n, 10 * i + j + 1));
    for (const p of payloads) {
      const bytes = host.send(c, p);
      if (bytes.length % 512 === 0) wantZlp++;
    }
    const total = payloads.reduce((n, p) => n + p.length, 0);
    const echoed = await host.receive(c, total);
    t.ok(echoed.equals(Buffer.concat(payloads)), `burst ${i + 1}: all ${total} bytes echoed in order`);
  }
  t.equal(wantZlp, 5, 'five of the packets needed a ZLP');
  await host.collect(200);
  t.same(host.controls.filter((l) => l.type === 3), [], 'no CONTROL error lines');
  t.same(port.zlpViolations, [], "the phone's own transfers follow the ZLP rule");
});

t.test('data past the default window draws a RST that mentions amnesia', async (t) => {
  const { host } = await phone(t);
  // Advertise 256 bytes and never ACK the echo: the echo service backs up,
  // stops reading, and the phone stops ACKing what it cannot deliver.
  const c = await host.open(ECHO_PORT, 1);
  const devWindow = c.synAck.tcp!.window << 8;
  t.equal(devWindow, 131072, 'the phone advertises 131072 bytes');
  let lastAck = c.devAck;
  let lastMove = Date.now();
  let early: DecodedPacket | null = null;
  const absorb = (p: DecodedPacket | null) => {
    host.note(p);
    if (p && isFor(p, c.sport, c.dport) && p.tcp!.flags & TH_RST) early = p;
    if (c.devAck !== lastAck) {
      lastAck = c.devAck;
      lastMove = Date.now();
    }
  };
  const chunk = pattern(49152 - 36, 3);
  const cap = 512 * 1024 * 1024;
  let stalled = false;
  while (c.seq - 1 < cap && !early) {
    for (let p = await host.port.nextPacket(0); p; p = await host.port.nextPacket(0)) absorb(p);
    const room = c.devAck + c.devWin - c.seq;
    if (room > 0) {
      host.send(c, chunk.subarray(0, Math.min(room, chunk.length)));
      continue;
    }
    if (Date.now() - lastMove > 1500) {
      stalled = true;
      break;
    }
    absorb(await host.port.nextPacket(20));
  }
  t.equal(early, null, 'no RST while the host kept to the window');
  t.ok(stalled, `the phone stopped ACKing (after ${((c.seq - 1) / KiB).toFixed(0)} KiB)`);
  t.equal(c.devAck + c.devWin, c.seq, 'the window is exactly full');
  t.comment(`the phone's ACK stalled at ${c.devAck - 1} bytes with ${c.seq - c.devAck} in its window`);

  // One byte too many.
  host.send(c, Buffer.alloc(100, 0x7a));
  const rst = await host.expect('a RST', (p) => isFor(p, c.sport, c.dport) && (p.tcp!.flags & TH_RST) !== 0, 5000);
  t.equal(rst.tcp!.flags, TH_RST, 'flags RST alone');
  t.match(rst.payload.toString(), /amnesia/, `the RST says why: "${rst.payload.toString()}"`);
});

t.test('a small configured window is just as hard a limit', async (t) => {
  const { host } = await phone(t, { window: 1024 });
  const c = await host.open(ECHO_PORT);
  t.equal(c.synAck.tcp!.window, 4, 'the phone advertises 1024 bytes');
  const full = pattern(1024, 5);
  t.ok((await host.echo(c, full)).equals(full), 'a full window is accepted');
  const deadline = Date.now() + 5000;
  while (c.devAck !== 1025 && Date.now() < deadline) host.note(await host.port.nextPacket(50));
  t.equal(c.devAck, 1025, 'the phone ACKed the 1024 bytes');
  // Now 1280 bytes from 1025 end 256 bytes past 1025 + 1024.
  host.send(c, pattern(1280, 6));
  const rst = await host.expect('a RST', (p) => isFor(p, c.sport, c.dport) && (p.tcp!.flags & TH_RST) !== 0, 5000);
  t.match(rst.payload.toString(), /amnesia/, `the RST says why: "${rst.payload.toString()}"`);
});

for (const [flags, name] of [
  [TH_ACK | TH_PSH, 'ACK|PSH'],
  [TH_ACK | TH_FIN, 'ACK|FIN'],
  [TH_SYN, 'SYN'],
] as const) {
  t.test(`${name} on an established connection draws a RST with a reason`, async (t) => {
    const { host } = await phone(t);
    const c = await host.open(ECHO_PORT);
    t.equal((await host.echo(c, Buffer.from('ok'))).toString(), 'ok');
    host.send(c, Buffer.from('nope'), { flags });
    const skipped: DecodedPacket[] = [];
    const rst = await host.expect('a RST', (p) => isFor(p, c.sport, c.dport) && (p.tcp!.flags & TH_RST) !== 0, 5000, skipped);
    t.same(
      skipped.filter((p) => isFor(p, c.sport, c.dport) && p.payload.length > 0).map((p) => p.payload.toString()),
      [],
      'the bytes were not delivered',
    );
    const reason = rst.payload.toString();
    t.ok(reason.length > 0, 'the RST carries a reason text');
    t.match(reason, `0x${flags.toString(16)}`, `it names the flags: "${reason}"`);

    // The connection is gone: more data on it draws an anonymous RST.
    host.send(c, Buffer.from('late'));
    const anon = await host.expect('an anonymous RST', (p) => isFor(p, c.sport, c.dport) && (p.tcp!.flags & TH_RST) !== 0);
    t.equal(anon.tcp!.seq, 0, 'anonymous RST: seq 0');
    t.equal(anon.tcp!.ack, c.seq - 4, 'anonymous RST: ack = the stray packet\'s seq');

    // The phone itself is fine.
    const d = await host.open(ECHO_PORT);
    t.equal((await host.echo(d, Buffer.from('again'))).toString(), 'again', 'new connections still work');
  });
}

t.test('SYN to a port with nothing behind it: RST and "failed: 61"', async (t) => {
  const { host } = await phone(t);
  const sport = host.syn(4242);
  const rst = await host.expect('a RST for port 4242', (p) => isFor(p, sport, 4242));
  t.equal(rst.tcp!.flags & TH_RST, TH_RST, 'the SYN is answered with RST');
  t.equal(rst.tcp!.flags & TH_SYN, 0, 'not with SYN|ACK');
  const line = await host.control('the failed-session line', (l) => /failed: 61/.test(l.text));
  t.match(line.text, /port 4242 failed: 61/, `the phone logs it: "${line.text}"`);
  const c = await host.open(ECHO_PORT);
  t.equal((await host.echo(c, Buffer.from('still up'))).toString(), 'still up');
});

// Found through Debian's usbmuxd in the USB lab (lab/): restarted with the
// phone still configured, it sends VERSION (v1-framed) into a live v2 session.
t.test('a host that starts over with VERSION gets a new session, not a dead phone', async (t) => {
  const { host, port, peer } = await phone(t);
  const detached: string[] = [];
  peer.engine.on('detached', (d) => detached.push(d.code));
  const old = await host.open(ECHO_PORT);
  t.equal((await host.echo(old, Buffer.from('first host'))).toString(), 'first host');

  port.sendTransfer(wire.encodePacket({ version: 1, protocol: PROTO_VERSION, payload: versionBody(2) }));
  const version = await host.expect('a second VERSION reply', (p) => p.protocol === PROTO_VERSION);
  t.equal(version.length, 20, 'answered with a v1-framed VERSION, as at first');
  t.equal(version.payload.readUInt32BE(0), 2);
  // The restarted host numbers its source ports from 1 again, and has seen no log line yet.
  const again = new HandHost(port, peer);
  port.sendTransfer(port.encode(PROTO_SETUP, { payload: Buffer.from([0x07]) }));
  await again.control('the SETUP line of the new session', (l) => /debug level to 7/.test(l.text));
  const c = await again.open(ECHO_PORT);
  t.equal(c.synAck.tcp!.flags, TH_SYN | TH_ACK, 'the same source port opens a new connection');
  t.equal((await again.echo(c, Buffer.from('second host'))).toString(), 'second host');
  t.same(detached, [], 'the phone never went away');
});

t.test('a truncated VERSION is logged and dropped; the phone stays', async (t) => {
  const { host, port, peer } = await phone(t);
  const detached: string[] = [];
  peer.engine.on('detached', (d) => detached.push(d.code));
  port.sendTransfer(wire.encodePacket({ version: 1, protocol: PROTO_VERSION, payload: Buffer.from([0, 0, 0, 2]) }));
  const err = await host.control('a CONTROL error line', (l) => l.type === 3);
  t.match(err.text, /VERSION body of 4 bytes/);
  const c = await host.open(ECHO_PORT);
  t.equal((await host.echo(c, Buffer.from('still up'))).toString(), 'still up');
  t.same(detached, []);
});
