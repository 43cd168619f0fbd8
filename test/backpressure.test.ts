// Flow control: a slow client must stall the phone rather than grow the
// host's memory; the host must never send past the phone's window (even one
// that shrinks); and the host must ACK only what its client has taken.
import { once } from 'node:events';

import t from 'tap';

import { SOURCE_PORT } from '../src/protocol/sim-ports.js';
import {
  KiB,
  MiB,
  PacketPort,
  pattern,
  sourceTransfer,
  TH_ACK,
  TH_SYN,
  type TcpFields,
} from './helpers/flow-helpers.js';
import {
  openClient,
  RawDevice,
  readExactly,
  readyDevice,
  startDeviceProcess,
  startHost,
  waitFor,
  type HostSetup,
} from './helpers/harness.js';
import { rssBounded } from './helpers/sanitizers.js';

t.test('a slow reader stalls the device; host memory stays flat', async (t) => {
  const host = startHost(t);
  const ready = readyDevice(host.engine);
  await startDeviceProcess(t, host.cable);
  const handle = await ready;
  const { socket } = await openClient(t, host, handle, SOURCE_PORT);
  const total = 64 * MiB;
  const burst = 512 * KiB;
  const pauseMs = 25;

  let clientBytes = 0;
  let inBurst = 0;
  let peakRss = 0;
  let maxLag = 0;
  let samples = 0;
  const base = host.engine.stats().payloadBytesFromDevice;
  const rss0 = process.memoryUsage().rss;
  const sample = () => {
    samples++;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    // What the host has taken from the device but the client has not read:
    // its own queue plus the kernel's socket buffers.
    const lag = host.engine.stats().payloadBytesFromDevice - base - clientBytes;
    maxLag = Math.max(maxLag, lag);
  };
  const sampler = setInterval(sample, 20);
  t.teardown(() => clearInterval(sampler));

  const started = performance.now();
  const r = await sourceTransfer(socket, total, (bytes) => {
    const delta = bytes - clientBytes;
    clientBytes = bytes;
    inBurst += delta;
    if (inBurst >= burst) {
      inBurst = 0;
      socket.pause();
      sample();
      setTimeout(() => socket.resume(), pauseMs);
    }
  });
  const ms = performance.now() - started;
  clearInterval(sampler);
  sample();

  t.equal(r.bytes, total);
  t.equal(r.digest.toString('hex'), r.trailer.toString('hex'), 'no byte was lost or changed');
  const growth = Math.max(0, peakRss - rss0);
  t.comment(`slow read of ${total / MiB} MiB took ${Math.round(ms)} ms; ${samples} samples`);
  t.comment(`peak RSS growth ${(growth / MiB).toFixed(1)} MiB; max bytes held between device and client ${(maxLag / KiB).toFixed(0)} KiB`);
  rssBounded(t, growth < 96 * MiB, `RSS growth stays bounded (${(growth / MiB).toFixed(1)} MiB < 96 MiB)`);
  t.ok(
    maxLag <= host.engine.window + 2 * MiB,
    `the host never held more than its window plus socket buffers (${maxLag} bytes)`,
  );
});

/** A raw device on the host's cable, handshaken, and the host's handle. */
async function rawDevice(
  t: { teardown(fn: () => void): void },
  host: HostSetup,
): Promise<{ dev: RawDevice; port: PacketPort; handle: number }> {
  const dev = new RawDevice(host.cable);
  t.teardown(() => dev.close());
  const attached = waitFor(host.engine, 'attached');
  const ready = readyDevice(host.engine);
  dev.sendDescriptor();
  await attached;
  dev.handshake();
  const handle = await ready;
  return { dev, port: new PacketPort(dev.cable), handle };
}

t.test('the host never exceeds the device window, even as it shrinks', async (t) => {
  const host = startHost(t);
  const { port, handle } = await rawDevice(t, host);
  const clientP = openClient(t, host, handle, 62078);
  const syn = await port.expect('the SYN', (p) => p.tcp?.flags === TH_SYN);
  const sport = syn.tcp!.sport;
  const dport = syn.tcp!.dport;
  const reply = (ack: number, windowBytes: number, flags = TH_ACK): TcpFields => ({
    sport: dport,
    dport: sport,
    seq: flags === (TH_SYN | TH_ACK) ? 0 : 1,
    ack,
    flags,
    window: windowBytes >> 8,
  });

  // The device's view: the last ACK and window it sent, so the right edge.
  let devAck = 1;
  let devWin = 1024;
  port.sendTcp(reply(1, devWin, TH_SYN | TH_ACK));
  const { socket } = await clientP;
  const handshakeAck = await port.expect('the handshake ACK', (p) => p.tcp?.flags === TH_ACK);
  t.equal(handshakeAck.tcp!.seq, 1);
  t.equal(handshakeAck.tcp!.ack, 1);

  const data = pattern(64 * KiB, 7);
  socket.write(data);

  const received: Buffer[] = [];
  let nextSeq = 1;
  let overruns: string[] = [];
  const badFlags: number[] = [];
  const outOfOrder: string[] = [];
  // Reads the host's packets for up to `ms` or until `until` bytes in total.
  const drain = async (ms: number, until?: number) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      const p = await port.nextPacket(left);
      if (!p) return;
      if (!p.tcp || p.tcp.sport !== sport) continue;
      if (p.tcp.flags !== TH_ACK) badFlags.push(p.tcp.flags);
      if (p.payload.length === 0) continue;
      if (p.tcp.seq !== nextSeq) outOfOrder.push(`seq ${p.tcp.seq} where ${nextSeq} was next`);
      const end = p.tcp.seq + p.payload.length;
      if (end - devAck > devWin) overruns.push(`seq ${p.tcp.seq} + ${p.payload.length} past ack ${devAck} + window ${devWin}`);
      received.push(p.payload);
      nextSeq = end;
      if (until !== undefined && nextSeq - 1 >= until) return;
    }
  };

  await drain(3000, 1024);
  await drain(300);
  t.same(overruns, [], 'a 1024-byte window is never exceeded');
  t.equal(nextSeq - 1, 1024, 'the host filled the 1024-byte window and stopped');
  t.ok(host.engine.stats().windowStalls > 0, 'the engine counted the window stall');

  // ACK half, shrink the window to 512: the right edge stays where it was.
  devAck = 513;
  devWin = 512;
  port.sendTcp(reply(devAck, devWin));
  await drain(400);
  t.equal(nextSeq - 1, 1024, 'with the edge unmoved nothing more is sent');

  // ACK all with a 512-byte window: exactly 512 more may come.
  devAck = 1025;
  port.sendTcp(reply(devAck, devWin));
  await drain(3000, 1536);
  await drain(300);
  t.equal(nextSeq - 1, 1536, 'the 512-byte window was filled, no more');

  // Shrink to 256 bytes and step through several ACKs.
  devWin = 256;
  for (let i = 0; i < 4; i++) {
    devAck = nextSeq;
    const expectEnd = nextSeq - 1 + 256;
    port.sendTcp(reply(devAck, devWin));
    await drain(3000, expectEnd);
    await drain(150);
    t.equal(nextSeq - 1, expectEnd, `step ${i + 1}: 256 more bytes, no more`);
  }
  t.same(overruns, [], 'the shrunken windows were honoured');

  // Open wide and ACK as data arrives until everything is in.
  devWin = 128 * KiB;
  overruns = [];
  const deadline = Date.now() + 10_000;
  while (nextSeq - 1 < data.length && Date.now() < deadline) {
    devAck = nextSeq;
    port.sendTcp(reply(devAck, devWin));
    await drain(500, data.length);
  }
  await drain(200);
  t.same(overruns, [], 'the wide window was honoured');
  t.same(badFlags, [], 'every packet carried ACK alone');
  t.same(outOfOrder, [], 'the data came in order, without gaps');
  const all = Buffer.concat(received);
  t.equal(all.length, data.length, 'all 64 KiB arrived');
  t.ok(all.equals(data), 'byte for byte what the client wrote');
  t.same(port.zlpViolations, [], 'each packet of a multiple of 512 bytes was followed by a ZLP');
  t.comment(`host transfers seen: ${port.transfersSeen}, ZLPs: ${port.zlpsSeen}`);
});

t.test('the host ACKs only what its client has taken', async (t) => {
  const host = startHost(t);
  const { port, handle } = await rawDevice(t, host);
  const clientP = openClient(t, host, handle, 62078);
  const syn = await port.expect('the SYN', (p) => p.tcp?.flags === TH_SYN);
  const sport = syn.tcp!.sport;
  const devPort = syn.tcp!.dport;
  port.sendTcp({ sport: devPort, dport: sport, seq: 0, ack: 1, flags: TH_SYN | TH_ACK, window: 0x200 });
  const { socket } = await clientP;
  socket.pause();
  const handshakeAck = await port.expect('the handshake ACK', (p) => p.tcp?.flags === TH_ACK);
  let hostAck = handshakeAck.tcp!.ack;
  let hostWin = handshakeAck.tcp!.window << 8;
  t.equal(hostAck, 1, 'the host expects device byte 1 first');
  t.equal(hostWin, host.engine.window, 'the host advertises its configured window');

  const cap = 32 * MiB;
  const source = pattern(cap, 11);
  let nextSeq = 1;
  const acksPastSent: number[] = [];
  const absorb = (p: { tcp?: { sport: number; ack: number; window: number; flags: number } } | null) => {
    if (!p?.tcp || p.tcp.sport !== sport) return false;
    if (p.tcp.ack > nextSeq) acksPastSent.push(p.tcp.ack);
    hostWin = p.tcp.window << 8;
    if (p.tcp.ack !== hostAck) {
      hostAck = p.tcp.ack;
      return true;
    }
    return false;
  };

  // Send as fast as the host's window allows; stop when its ACK has not moved
  // for a while with the window full.
  let lastProgress = Date.now();
  let stalled = false;
  while (nextSeq - 1 < cap) {
    for (let p = await port.nextPacket(0); p; p = await port.nextPacket(0)) {
      if (absorb(p)) lastProgress = Date.now();
    }
    const room = hostAck + hostWin - nextSeq;
    if (room > 0) {
      const len = Math.min(room, 16 * KiB, cap - (nextSeq - 1));
      port.sendTcp(
        { sport: devPort, dport: sport, seq: nextSeq, ack: 1, flags: TH_ACK, window: 0x200 },
        source.subarray(nextSeq - 1, nextSeq - 1 + len),
        false,
      );
      nextSeq += len;
      continue;
    }
    if (Date.now() - lastProgress > 1500) {
      stalled = true;
      break;
    }
    if (absorb(await port.nextPacket(20))) lastProgress = Date.now();
  }
  const sent = nextSeq - 1;
  const acked = hostAck - 1;
  t.comment(`device sent ${(sent / KiB).toFixed(0)} KiB before the host's ACK stopped at ${(acked / KiB).toFixed(0)} KiB`);
  t.ok(stalled, 'with the client not reading, the host stopped acknowledging');
  t.ok(acked < sent, 'bytes the client has not taken are not acknowledged');
  t.ok(sent - acked <= host.engine.window, 'the device was held to the host window');
  t.same(acksPastSent, [], 'the host never ACKed bytes it was not sent');

  // The ACK stays put while the client still does not read.
  const quiet = await port.collect(500);
  t.notOk(quiet.some((p) => p.tcp?.sport === sport && p.tcp.ack !== hostAck), 'no ACK moves while the client is idle');

  // Now the client reads everything; the ACK must catch up with what was sent.
  const reading = readExactly(socket, sent);
  socket.resume();
  const deadline = Date.now() + 10_000;
  while (hostAck !== nextSeq && Date.now() < deadline) absorb(await port.nextPacket(200));
  t.equal(hostAck, nextSeq, 'once the client reads, the host ACKs everything');
  const got = await reading;
  t.ok(got.equals(source.subarray(0, sent)), 'the client read exactly what the device sent');

  // And flow continues: another 256 KiB pass straight through.
  const more = 256 * KiB;
  const tail = pattern(more, 13);
  const readingMore = readExactly(socket, more);
  let off = 0;
  const deadline2 = Date.now() + 10_000;
  while (off < more && Date.now() < deadline2) {
    for (let p = await port.nextPacket(0); p; p = await port.nextPacket(0)) absorb(p);
    const room = hostAck + hostWin - nextSeq;
    if (room <= 0) {
      absorb(await port.nextPacket(20));
      continue;
    }
    const len = Math.min(room, 16 * KiB, more - off);
    port.sendTcp({ sport: devPort, dport: sport, seq: nextSeq, ack: 1, flags: TH_ACK, window: 0x200 }, tail.subarray(off, off + len), false);
    nextSeq += len;
    off += len;
  }
  t.ok((await readingMore).equals(tail), 'later data flows once the reader keeps up');
  socket.destroy();
  await once(socket, 'close');
});
