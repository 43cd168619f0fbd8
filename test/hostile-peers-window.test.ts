// Phones that stop reading (issue 11, part 4): one that never answers the
// SYN, one that answers with a zero window and never opens it, and one that
// takes some data and then shuts its window for good. The usbmuxd client
// always gets a clear outcome: Result 3 while connecting, the socket closed
// once connected, and an RST tells the phone. A window shut only because our
// own client is not reading, or one with nothing waiting behind it, is left
// alone. Runs against an in-process daemon with short limits.
import t from 'tap';

import { binaryConnect, binaryResult, RawClient, sleep } from './helpers/usbmuxd-harness.js';
import { TH_ACK, TH_RST, TH_SYN } from './helpers/flow-helpers.js';
import { clientConnect, daemonWithRawPhone, packetsFor, pattern } from './helpers/hostile-helpers.js';
import { SLOW } from './helpers/wire-helpers.js';

const KiB = 1 << 10;
const CONNECT_MS = 1000;
const ZERO_WINDOW_MS = 600;

const limits = { connectTimeoutMs: CONNECT_MS, zeroWindowTimeoutMs: ZERO_WINDOW_MS };

t.test('no SYN|ACK: Connect answers Result 3 after the connect timeout, and the phone gets an RST', async (t) => {
  const { setup, phone } = await daemonWithRawPhone(t, limits);
  const client = await RawClient.open(t, setup.socketPath);
  const started = Date.now();
  client.send(binaryConnect(7, phone.deviceId, 4000));
  const syn = await phone.port.expect('the SYN', (p) => p.tcp?.flags === TH_SYN, SLOW);
  const result = await client.read(20, SLOW);
  const ms = Date.now() - started;
  t.same(result, binaryResult(7, 3), `Result 3 (ConnRefused) after ${ms} ms`);
  t.ok(ms >= CONNECT_MS - 50, 'not before the timeout');
  const rst = await phone.port.expect('the RST', (p) => p.tcp?.sport === syn.tcp!.sport, SLOW);
  t.equal(rst.tcp!.flags, TH_RST, 'the phone is told with an RST');
  t.notOk(client.closed, 'the client may go on with other commands');
  t.equal(setup.daemon.engine.stats().connectionsActive, 0, 'nothing is left in the engine');
});

t.test('SYN|ACK with window 0, never opened: the client is closed, the phone reset, nothing sent', async (t) => {
  const { setup, phone } = await daemonWithRawPhone(t, limits);
  const before = setup.daemon.engine.stats().zeroWindowResets;
  const conn = await clientConnect(t, setup, phone, 4001, 0);
  const started = Date.now();
  conn.client.send(pattern(100 * KiB, 3));
  t.ok(await conn.client.waitClosed(SLOW), `the client's socket is closed (${Date.now() - started} ms)`);
  t.ok(Date.now() - started >= ZERO_WINDOW_MS - 50, 'not before the limit');
  const seen = await packetsFor(phone.port, conn.hostPort, 300);
  t.equal(seen.filter((p) => p.payload.length > 0 && !(p.tcp!.flags & TH_RST)).length, 0, 'no byte went past the shut window');
  t.equal(seen.filter((p) => p.tcp!.flags === TH_RST).length, 1, 'one RST tells the phone');
  t.equal(setup.daemon.engine.stats().zeroWindowResets - before, 1, 'counted as a zero-window reset');
  t.equal(setup.daemon.engine.stats().connectionsActive, 0, 'the connection is gone');
});

t.test('a window that takes 64 KiB and then shuts for good', async (t) => {
  const { setup, phone } = await daemonWithRawPhone(t, limits);
  const conn = await clientConnect(t, setup, phone, 4002, 64 * KiB);
  const data = pattern(1024 * KiB, 4);
  conn.client.send(data);
  let got = 0;
  const parts: Buffer[] = [];
  while (got < 64 * KiB) {
    const p = await phone.port.expect('data', (x) => x.tcp?.sport === conn.hostPort && x.payload.length > 0, SLOW);
    parts.push(p.payload);
    got += p.payload.length;
  }
  t.equal(got, 64 * KiB, 'the host sends exactly the window');
  t.ok(Buffer.concat(parts).equals(data.subarray(0, got)), 'in order');
  // The phone ACKs it all and shuts its window.
  phone.port.sendTcp(conn.reply({ seq: 1, ack: 1 + got, window: 0 }));
  const started = Date.now();
  const rst = await phone.port.expect('the RST', (x) => x.tcp?.sport === conn.hostPort, SLOW);
  t.equal(rst.tcp!.flags, TH_RST, `an RST after ${Date.now() - started} ms, and no more data before it`);
  t.ok(await conn.client.waitClosed(SLOW), 'the client is closed');
});

t.test('a shut window with nothing waiting behind it is left alone, then used when it opens', async (t) => {
  const { setup, phone } = await daemonWithRawPhone(t, limits);
  const conn = await clientConnect(t, setup, phone, 4003, 0);
  await sleep(3 * ZERO_WINDOW_MS);
  t.same(await packetsFor(phone.port, conn.hostPort, 200), [], 'no RST while the client has nothing to send');
  t.notOk(conn.client.closed, 'the client is still connected');
  // It writes while the window is still shut, and the phone opens it in time.
  conn.client.send('hello');
  await sleep(ZERO_WINDOW_MS / 3);
  phone.port.sendTcp(conn.reply({ seq: 1, ack: 1, window: 64 * KiB }));
  const p = await phone.port.expect('the data', (x) => x.tcp?.sport === conn.hostPort, SLOW);
  t.equal(p.tcp!.flags, TH_ACK, 'data, not an RST');
  t.equal(p.payload.toString(), 'hello', 'the bytes go out once the window opens');
  await sleep(2 * ZERO_WINDOW_MS);
  t.notOk(conn.client.closed, 'and the connection lives on');
});

t.test('a window shut because our own client is not reading is not held against the phone', async (t) => {
  const { setup, phone } = await daemonWithRawPhone(t, limits);
  const conn = await clientConnect(t, setup, phone, 4004, 0);
  conn.client.socket.pause();
  // The phone fills our window (and the client's socket) while its own stays shut.
  const data = pattern(4096 * KiB, 9);
  let sent = 0;
  let edge = 1 + 256 * KiB;
  for (;;) {
    while (1 + sent < edge) {
      const n = Math.min(16 * KiB, edge - 1 - sent, data.length - sent);
      if (n <= 0) break;
      phone.port.sendTcp(conn.reply({ seq: 1 + sent, ack: 1, window: 0 }), data.subarray(sent, sent + n));
      sent += n;
    }
    const ack = await phone.port.nextPacket(500);
    if (!ack) break; // the host stopped ACKing: its client is full
    if (ack.tcp?.sport === conn.hostPort) edge = ack.tcp.ack + (ack.tcp.window << 8);
  }
  t.ok(sent > 0 && sent < data.length, `the phone could send ${sent} bytes before our window shut`);
  conn.client.send('waiting');
  await sleep(3 * ZERO_WINDOW_MS);
  const seen = await packetsFor(phone.port, conn.hostPort, 200);
  t.equal(seen.filter((p) => p.tcp!.flags & TH_RST).length, 0, 'no RST: the stall is ours');
  t.notOk(conn.client.closed, 'the client is still connected');
  t.equal(setup.daemon.engine.stats().zeroWindowResets, 0, 'no zero-window reset counted');
  // The client reads; every byte the phone sent arrives, in order.
  conn.client.socket.resume();
  const got = await conn.client.read(sent, SLOW);
  t.ok(got.equals(data.subarray(0, sent)), 'everything the phone sent arrives intact');
});

t.test('a phone that reads slowly but steadily is never reset', async (t) => {
  const { setup, phone } = await daemonWithRawPhone(t, limits);
  const conn = await clientConnect(t, setup, phone, 4005, 0);
  const data = pattern(64 * KiB, 6);
  conn.client.send(data);
  // Every half limit the phone takes 4 KiB and shuts its window again: shut
  // for most of the time, but never for a whole limit.
  const parts: Buffer[] = [];
  let got = 0;
  for (let i = 0; i < 8; i++) {
    await sleep(ZERO_WINDOW_MS / 2);
    phone.port.sendTcp(conn.reply({ seq: 1, ack: 1 + got, window: 4 * KiB }));
    const p = await phone.port.expect('4 KiB more', (x) => x.tcp?.sport === conn.hostPort, SLOW);
    if (p.tcp!.flags !== TH_ACK) {
      t.fail(`round ${i}: flags ${p.tcp!.flags} instead of data`);
      return;
    }
    parts.push(p.payload);
    got += p.payload.length;
    phone.port.sendTcp(conn.reply({ seq: 1, ack: 1 + got, window: 0 }));
  }
  t.equal(got, 32 * KiB, `8 rounds of 4 KiB over ${4 * ZERO_WINDOW_MS} ms, no RST`);
  t.ok(Buffer.concat(parts).equals(data.subarray(0, got)), 'in order');
  t.notOk(conn.client.closed, 'the client is still connected');
  t.equal(setup.daemon.engine.stats().zeroWindowResets, 0, 'no zero-window reset');
});
