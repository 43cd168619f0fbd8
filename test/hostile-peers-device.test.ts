// Hostile devices, end to end (issue 11, part 4): a phone that floods
// CONTROL and RST packets while connections carry data, one that resets a
// live connection with a nonsense sequence number, and one that sends past
// the window we advertised. In every case the host stays up, a healthy phone
// and the hostile phone's other connections keep working, and nothing the
// hostile phone sends is buffered beyond the window. The zero-window cases
// are in hostile-peers-window.test.ts.
import t from 'tap';

import type { LogEntry } from '../src/native/mux-engine.js';
import { PacketPort, pattern, TH_ACK, TH_RST, type TcpFields } from './helpers/flow-helpers.js';
import { readyDevice, startDeviceProcess, startHost, waitFor } from './helpers/harness.js';
import { deviceSend, healthyTransfer, readToEnd, replyFor } from './helpers/hostile-helpers.js';
import { rssBounded } from './helpers/sanitizers.js';
import { attachRawDevice, healthyPeerWorks, openRawClient, SLOW, sleep, within } from './helpers/wire-helpers.js';

const MiB = 1 << 20;
const KiB = 1 << 10;

t.test('a CONTROL and RST flood while the same phone and another one transfer', async (t) => {
  const host = startHost(t);
  const ready = readyDevice(host.engine);
  await startDeviceProcess(t, host.cable);
  const good = await ready;
  const { dev, handle } = await attachRawDevice(t, host);
  const live = await openRawClient(t, host, dev, handle, 1234, 0x400);
  const port = new PacketPort(dev.cable);
  const received: Buffer[] = [];
  live.socket.on('data', (c: Buffer) => received.push(c));
  const logs: LogEntry[] = [];
  host.engine.on('log', (l) => l.handle === handle && logs.push(l));
  let detached = false;
  host.engine.on('detached', (d) => d.handle === handle && (detached = true));

  let controls = 0;
  let rsts = 0;
  const flood = () => {
    for (let i = 0; i < 300; i++, controls++) {
      port.sendTransfer(port.encode(1, { payload: Buffer.concat([Buffer.from([7]), Buffer.from(`flood ${controls}\n`)]) }));
    }
    // RSTs for connections that do not exist (including the live
    // connection's host port with another device port): all ignored.
    for (let i = 0; i < 200; i++, rsts++) {
      const fields: TcpFields = { sport: i % 2 ? 1235 : 2000 + (rsts % 3000), dport: i % 2 ? live.sport : 1 + (rsts % 5000), seq: rsts, ack: rsts, flags: TH_RST, window: 0 };
      port.sendTcp(fields, i % 10 ? undefined : Buffer.from('go away\n'));
    }
  };
  const before = host.engine.stats();
  const data = pattern(4 * MiB, 11);
  const conn = { hostPort: live.sport, devicePort: 1234, reply: replyFor(1234, live.sport) };
  const [healthy] = await Promise.all([healthyTransfer(t, host, good, 16 * MiB), deviceSend(port, conn, data, flood)]);
  await within(
    (async () => {
      while (received.reduce((n, c) => n + c.length, 0) < data.length) await sleep(10);
    })(),
    SLOW,
    'the flooding phone data to reach its client',
  );
  const after = host.engine.stats();
  t.ok(healthy.up && healthy.down, `the healthy phone's 16 MiB up and down arrive intact during the flood (${healthy.ms} ms)`);
  t.ok(Buffer.concat(received).equals(data), 'the flooding phone\'s own connection delivers its 4 MiB intact and in order');
  // (The healthy phone sends a few log lines of its own.)
  t.ok(after.controlIn - before.controlIn >= controls, `all ${controls} CONTROL packets were read`);
  t.ok(after.logsSuppressed - before.logsSuppressed > 0, `the log flood was rate limited (${after.logsSuppressed - before.logsSuppressed} lines suppressed)`);
  t.ok(logs.filter((l) => l.text.startsWith('device: flood')).length < controls, 'fewer log lines than CONTROL packets reached the daemon log');
  t.ok(after.rstsIn - before.rstsIn >= rsts, `all ${rsts} RSTs were read`);
  t.notOk(detached, 'the flooding phone was not dropped');
  t.ok(host.engine.isReady(handle) && host.engine.isReady(good), 'both phones are still up');
  live.socket.write('still there?');
  const p = await port.expect('the client bytes after the flood', (x) => x.tcp?.sport === live.sport && x.payload.length > 0, SLOW);
  t.equal(p.payload.toString(), 'still there?', 'the live connection still carries data to the phone');
});

t.test('an RST with a nonsense sequence number ends only the connection it names', async (t) => {
  // The device is the sole authority over its connections: the link is
  // point to point, so no third party can forge an RST (the threat RFC 5961's
  // sequence check defends against), and a phone whose RST we ignored would
  // leave the client hanging. usbmuxd does not check it either.
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  const a = await openRawClient(t, host, dev, handle, 2001);
  const b = await openRawClient(t, host, dev, handle, 2002);
  const port = new PacketPort(dev.cable);
  const aReply = replyFor(2001, a.sport);
  const bReply = replyFor(2002, b.sport);
  const closed = new Promise<{ reason: string }>((resolve) => host.engine.on('closed', (conn, info) => conn === a.conn && resolve(info)));
  const aEnd = readToEnd(a.socket);
  port.sendTcp(aReply({ seq: 1, ack: 1, window: 128 * KiB }), Buffer.from('last words'));
  port.sendTcp(aReply({ seq: 0xdeadbeef, ack: 0x12345, window: 0, flags: TH_RST }), Buffer.from('bye\n'));
  t.equal((await aEnd).toString(), 'last words', 'A\'s client gets what the phone sent before the RST, then the end');
  t.match((await closed).reason, /reset by peer: bye/, 'the close reason carries the phone\'s text');
  const stray = (await port.collect(300)).filter((p) => p.tcp?.sport === a.sport && p.tcp.flags & TH_RST);
  t.equal(stray.length, 0, 'no RST is sent back for an RST');
  b.socket.write('ping');
  const ping = await port.expect('B\'s data', (p) => p.tcp?.sport === b.sport && p.payload.length > 0, SLOW);
  t.equal(ping.payload.toString(), 'ping', 'B still carries data to the phone');
  const pong = new Promise<string>((resolve) => b.socket.once('data', (c: Buffer) => resolve(c.toString())));
  port.sendTcp(bReply({ seq: 1, ack: 5, window: 128 * KiB }), Buffer.from('pong'));
  t.equal(await within(pong, SLOW, 'B\'s reply'), 'pong', 'and from it');
  t.ok(host.engine.isReady(handle), 'the phone is still up');
});

t.test('a phone that sends past our window: the excess is dropped, that connection reset, the rest unharmed', async (t) => {
  const host = startHost(t);
  const { dev, handle } = await attachRawDevice(t, host);
  const victim = await openRawClient(t, host, dev, handle, 3001);
  const other = await openRawClient(t, host, dev, handle, 3002);
  const port = new PacketPort(dev.cable);
  victim.socket.pause();
  const logs: string[] = [];
  host.engine.on('log', (l) => logs.push(l.text));
  const rss0 = process.memoryUsage().rss;
  // 16 MiB in 48 KiB packets, back to back, never looking at an ACK: at most
  // the 256 KiB window (plus what the client socket took meanwhile) is ours.
  const total = 16 * MiB;
  const data = pattern(total, 5);
  const reply = replyFor(3001, victim.sport);
  for (let sent = 0; sent < total; sent += 48 * KiB) {
    port.sendTcp(reply({ seq: 1 + sent, ack: 1, window: 128 * KiB }), data.subarray(sent, sent + 48 * KiB));
  }
  const rst = await port.expect('an RST for the overrunning connection', (p) => p.tcp?.sport === victim.sport && (p.tcp.flags & TH_RST) !== 0, SLOW);
  t.equal(rst.tcp!.flags, TH_RST, 'the host resets that connection');
  const why = logs.find((l) => /past our window/.test(l)) ?? (await waitFor<LogEntry>(host.engine, 'log', (l) => /past our window/.test(l.text), SLOW).catch(() => undefined))?.text;
  t.match(why, /the device sent \d+ bytes past our window/, 'and logs why');
  const growth = process.memoryUsage().rss - rss0;
  const delivered = await readToEnd(victim.socket.resume());
  t.ok(delivered.length >= 128 * KiB, `the client got the in-window bytes (${delivered.length})`);
  t.ok(delivered.length <= host.engine.window + 2 * MiB, `and no more than the window plus socket buffers (${delivered.length} of ${total})`);
  t.ok(delivered.equals(data.subarray(0, delivered.length)), 'what it got is the start of the stream, unchanged');
  rssBounded(t, growth < 64 * MiB, `host RSS grew ${(growth / MiB).toFixed(1)} MiB while 16 MiB was pushed (< 64 MiB)`);

  // The other connection on the same phone, and another phone, still work.
  other.socket.write('next');
  const p = await port.expect('the other connection\'s data', (x) => x.tcp?.sport === other.sport && x.payload.length > 0, SLOW);
  t.equal(p.payload.toString(), 'next', 'the phone\'s other connection still works');
  t.equal(p.tcp!.flags, TH_ACK, 'as a plain ACK packet');
  t.ok(host.engine.isReady(handle), 'the phone is still up');
  const { echoed } = await healthyPeerWorks(t, host);
  t.equal(echoed, 'still alive', 'a healthy phone still echoes');
});
