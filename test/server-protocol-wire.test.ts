// The client protocol at the frame level, with hand-made sockets: reply
// headers of plist requests, the byte-swapped plist PortNumber, DeviceID
// allocation across detach/attach, and the ordering of a Listen burst
// against another client's request.
import { join } from 'node:path';

import t from 'tap';

import { UsbmuxClient, type UsbmuxEvent } from '../src/client/usbmux-client.js';
import { RawDevice, waitFor } from './helpers/harness.js';
import { recvPacket, VERSION_REPLY_V2 } from './helpers/wire-helpers.js';
import { startPeer } from '../src/sim/peer.js';
import { ECHO_PORT } from '../src/protocol/sim-ports.js';
import {
  frame,
  hex,
  plistRequest,
  RawClient,
  SLOW,
  startDaemon,
  tempDir,
  visibleDevices,
  waitUntil,
  within,
  type Dict,
  type Frame,
} from './helpers/usbmuxd-harness.js';

t.test('plist replies carry version 1, message 8 and the request tag', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const sim = setup.daemon.devices.visible()[0];
  const c = await RawClient.open(t, setup.socketPath);

  const check = (f: Frame, tag: number, what: string) => {
    t.equal(f.length, f.raw.length, `${what}: header length is the frame length`);
    t.equal(f.version, 1, `${what}: header version 1`);
    t.equal(f.message, 8, `${what}: message 8 (PLIST)`);
    t.equal(f.tag, tag, `${what}: tag 0x${tag.toString(16)} echoed`);
    t.match(f.body.toString('utf8'), /^<\?xml version="1.0" encoding="UTF-8"\?>/, `${what}: the body is XML`);
  };

  c.send(plistRequest(0xdeadbeef, { MessageType: 'ReadBUID' }));
  const buid = await c.readPlist();
  check(buid.frame, 0xdeadbeef, 'ReadBUID');
  t.equal(buid.frame.raw.subarray(4, 16).toString('hex'), '0100000008000000efbeadde', 'raw header bytes 4..15 as Apple sends them');
  t.match(buid.dict.BUID, /^[0-9A-F-]{36}$/);

  c.send(plistRequest(0x12345678, { MessageType: 'ListDevices' }));
  const list = await c.readPlist();
  check(list.frame, 0x12345678, 'ListDevices');
  t.notOk('MessageType' in list.dict, 'the ListDevices reply has no top-level MessageType');
  const entries = list.dict.DeviceList as Dict[];
  t.equal(entries.length, 1);
  t.equal(entries[0].MessageType, 'Attached', 'every DeviceList item says MessageType Attached');
  t.equal(entries[0].DeviceID, sim.deviceId);

  c.send(plistRequest(7, { MessageType: 'ReadPairRecord', PairRecordID: '00008101-0000000000000001' }));
  const missing = await c.readPlist();
  check(missing.frame, 7, 'a Result');
  t.same(missing.dict, { MessageType: 'Result', Number: 2 }, 'ReadPairRecord of a missing record: Result 2');

  c.send(plistRequest(0xffffffff, { MessageType: 'Connect', DeviceID: 4711, PortNumber: 0x0700 }));
  const baddev = await c.readPlist();
  check(baddev.frame, 0xffffffff, 'Connect Result');
  t.same(baddev.dict, { MessageType: 'Result', Number: 2 }, 'Connect to an unknown device: Result 2');

  // The same socket, now with a binary request: the reply follows the request's version.
  c.send(frame(0, 3, 0x99));
  const listen = await c.readFrame();
  t.equal(hex(listen.raw), hex(Buffer.from('1400000000000000010000009900000000000000', 'hex')), 'a binary Listen gets a binary Result');
  const add = await c.readFrame();
  t.equal(add.message, 4, 'then a binary DEVICE_ADD');
  t.equal(add.tag, 0, 'notifications use tag 0');

  const l = await RawClient.open(t, setup.socketPath);
  l.send(plistRequest(42, { MessageType: 'Listen' }));
  const ok = await l.readPlist();
  check(ok.frame, 42, 'Listen Result');
  t.same(ok.dict, { MessageType: 'Result', Number: 0 });
  const attached = await l.readPlist();
  check(attached.frame, 0, 'Attached notification');
  t.equal(attached.dict.MessageType, 'Attached');
});

t.test('the plist PortNumber is byte-swapped (htons)', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const id = setup.daemon.devices.visible()[0].deviceId;

  // Port 7 in host order is port 0x0700 = 1792 to usbmuxd: nothing listens there.
  const plain = await RawClient.open(t, setup.socketPath);
  plain.send(plistRequest(1, { MessageType: 'Connect', DeviceID: id, PortNumber: 7 }));
  t.same((await plain.readPlist()).dict, { MessageType: 'Result', Number: 3 }, 'PortNumber 7 means port 1792: refused');

  const swapped = await RawClient.open(t, setup.socketPath);
  swapped.send(plistRequest(2, { MessageType: 'Connect', DeviceID: id, PortNumber: 0x0700 }));
  const r = await swapped.readPlist();
  t.same(r.dict, { MessageType: 'Result', Number: 0 }, 'PortNumber 1792 (htons(7)) reaches the echo service');
  t.equal(r.frame.tag, 2);
  swapped.send('raw after plist connect');
  t.equal((await swapped.read(23)).toString(), 'raw after plist connect', 'then the socket is a raw pipe');

  // Lockdown's well-known value from the reference: 62078 is sent as 32498.
  const lockdown = await RawClient.open(t, setup.socketPath);
  lockdown.send(plistRequest(3, { MessageType: 'Connect', DeviceID: id, PortNumber: 32498 }));
  t.same((await lockdown.readPlist()).dict, { MessageType: 'Result', Number: 0 }, 'PortNumber 32498 reaches lockdownd on 62078');
});

t.test('DeviceIDs start at 1 and are never reused', async (t) => {
  // A cable the daemon listens on, for phones this test plugs in and out.
  const cable = join(tempDir(t), 'cable');
  const setup = await startDaemon(t, { sims: 1, cables: [cable] });
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const first = await client.listDevices();
  t.same(first.map((d) => d.deviceId), [1], 'the first device is DeviceID 1');

  const listener = await client.listen();
  t.teardown(() => listener.close());
  const it = listener[Symbol.asyncIterator]();
  const next = async (): Promise<UsbmuxEvent> => {
    const r = await within(it.next(), SLOW, 'a notification');
    if (r.done) throw new Error('the listener ended');
    return r.value;
  };
  t.match(await next(), { type: 'attached', device: { deviceId: 1 } }, 'the listener starts with device 1');

  const seen: number[] = [];
  for (let round = 0; round < 3; round++) {
    const peer = await startPeer({ cable });
    t.teardown(() => peer.close());
    const ev = await next();
    t.equal(ev.type, 'attached', `round ${round}: Attached`);
    const id = ev.type === 'attached' ? ev.device.deviceId : -1;
    if (ev.type === 'attached') t.equal(ev.device.serialNumber.replace('-', ''), peer.serial, `round ${round}: it is the new phone`);
    seen.push(id);
    const both = await visibleDevices(setup.address, 2);
    t.same(both.map((d) => d.deviceId), [1, id], `round ${round}: ListDevices shows 1 and ${id}`);
    await peer.close();
    t.same(await next(), { type: 'detached', deviceId: id }, `round ${round}: Detached ${id}`);
    await waitUntil(async () => (await client.listDevices()).length === 1, 'the phone to leave the list');
  }
  t.same(seen, [2, 3, 4], 'each new phone gets the next DeviceID; a detached id is not handed out again');
  const last = await client.listDevices();
  t.same(last.map((d) => d.deviceId), [1], 'the simulated phone kept DeviceID 1 throughout');
});

/** Frames parsed from a byte log, each with the log index at which it was complete. */
function framesOf(chunks: { who: string; bytes: Buffer }[], who: string): { frame: Frame; completeAt: number }[] {
  let buf = Buffer.alloc(0);
  const out: { frame: Frame; completeAt: number }[] = [];
  chunks.forEach((c, i) => {
    if (c.who !== who) return;
    buf = Buffer.concat([buf, c.bytes]);
    while (buf.length >= 16 && buf.length >= buf.readUInt32LE(0)) {
      const length = buf.readUInt32LE(0);
      const raw = buf.subarray(0, length);
      out.push({
        frame: { length, version: raw.readUInt32LE(4), message: raw.readUInt32LE(8), tag: raw.readUInt32LE(12), body: raw.subarray(16), raw },
        completeAt: i,
      });
      buf = buf.subarray(length);
    }
  });
  return out;
}

t.test('a Listen burst is complete before another client is answered', async (t) => {
  const SIMS = 3;
  const setup = await startDaemon(t, { sims: SIMS });

  for (const [name, listenBytes] of [
    ['plist Listen', plistRequest(1, { MessageType: 'Listen' })],
    ['binary Listen', frame(0, 3, 1)],
  ] as const) {
    for (let round = 0; round < 10; round++) {
      const a = await RawClient.open(t, setup.socketPath);
      const b = await RawClient.open(t, setup.socketPath);
      const log: { who: string; bytes: Buffer }[] = [];
      let sentB = false;
      a.socket.on('data', (bytes: Buffer) => {
        log.push({ who: 'A', bytes });
        // B asks the moment A's first bytes (its Listen Result) arrive.
        if (!sentB) {
          sentB = true;
          b.send(plistRequest(2, { MessageType: 'ListDevices' }));
        }
      });
      b.socket.on('data', (bytes: Buffer) => log.push({ who: 'B', bytes }));
      a.send(listenBytes);
      const reply = await b.readPlist();
      const listed = (reply.dict.DeviceList as Dict[]).length;
      const aFrames = framesOf(log, 'A');
      const bFrames = framesOf(log, 'B');
      const attachedBefore = aFrames.filter((f) => f.completeAt < bFrames[0].completeAt && f.frame.tag === 0).length;
      if (attachedBefore !== SIMS || listed !== SIMS) {
        t.fail(`${name} round ${round}: B was answered after ${attachedBefore} of ${SIMS} Attached (it listed ${listed})`);
      }
      a.destroy();
      b.destroy();
    }
    t.pass(`${name}: 10 rounds, every time all ${SIMS} Attached reached A before B's reply`);
  }

  // Both requests written in the same tick: whichever the daemon takes first,
  // B's reply never lands in the middle of A's burst.
  for (let round = 0; round < 10; round++) {
    const a = await RawClient.open(t, setup.socketPath);
    const b = await RawClient.open(t, setup.socketPath);
    const log: { who: string; bytes: Buffer }[] = [];
    a.socket.on('data', (bytes: Buffer) => log.push({ who: 'A', bytes }));
    b.socket.on('data', (bytes: Buffer) => log.push({ who: 'B', bytes }));
    a.send(plistRequest(1, { MessageType: 'Listen' }));
    b.send(plistRequest(2, { MessageType: 'ListDevices' }));
    await b.readPlist();
    await waitUntil(() => framesOf(log, 'A').length >= 1 + SIMS, 'A\'s burst');
    const aFrames = framesOf(log, 'A');
    const bAt = framesOf(log, 'B')[0].completeAt;
    const before = aFrames.filter((f) => f.completeAt < bAt).length;
    t.ok(before === 0 || before === 1 + SIMS, `same-tick round ${round}: B's reply came before or after A's whole burst (${before} of ${1 + SIMS} A frames before it)`);
    a.destroy();
    b.destroy();
  }
});

t.test('requests pipelined in one write are answered in order', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const id = setup.daemon.devices.visible()[0].deviceId;
  const udid = '00008101-0000000000000777';
  const record = Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>HostID</key><string>h</string></dict></plist>');
  // Pair-record requests touch the disk (asynchronous); ListDevices does not.
  // A quick reply must never overtake a slow one sent before it.
  const requests: [number, Record<string, string | number | Buffer>, (d: Dict) => boolean][] = [
    [10, { MessageType: 'ReadBUID' }, (d) => typeof d.BUID === 'string'],
    [11, { MessageType: 'ListDevices' }, (d) => Array.isArray(d.DeviceList)],
    [12, { MessageType: 'SavePairRecord', PairRecordID: udid, PairRecordData: record }, (d) => d.Number === 0],
    [13, { MessageType: 'ListDevices' }, (d) => Array.isArray(d.DeviceList)],
    [14, { MessageType: 'ReadPairRecord', PairRecordID: udid }, (d) => d.PairRecordData instanceof Uint8Array],
    [15, { MessageType: 'ListListeners' }, (d) => Array.isArray(d.ListenerList)],
    [16, { MessageType: 'DeletePairRecord', PairRecordID: udid }, (d) => d.Number === 0],
    [17, { MessageType: 'ReadPairRecord', PairRecordID: udid }, (d) => d.Number === 2],
    [18, { MessageType: 'Nonsense' }, (d) => d.Number === 1],
  ];
  const c = await RawClient.open(t, setup.socketPath);
  const payload = Buffer.from('payload behind a pipelined Connect');
  c.send(
    Buffer.concat([
      ...requests.map(([tag, body]) => plistRequest(tag, body)),
      plistRequest(19, { MessageType: 'Connect', DeviceID: id, PortNumber: ECHO_PORT << 8 }),
      payload,
    ]),
  );
  for (const [tag, body, ok] of requests) {
    const r = await c.readPlist();
    t.equal(r.frame.tag, tag, `reply ${tag} (${body.MessageType}) comes in request order`);
    t.ok(ok(r.dict), `reply ${tag} is the right answer`);
  }
  const connect = await c.readPlist();
  t.equal(connect.frame.tag, 19);
  t.same(connect.dict, { MessageType: 'Result', Number: 0 }, 'the pipelined Connect succeeds');
  t.equal((await c.read(payload.length)).toString(), payload.toString(), 'and the bytes behind it reach the echo service');
});

t.test('a device is hidden until its mux handshake completes (visibility, 4.9)', async (t) => {
  const cable = join(tempDir(t), 'cable');
  const setup = await startDaemon(t, { sims: 1, cables: [cable] });
  const listener = await RawClient.open(t, setup.socketPath);
  listener.send(plistRequest(1, { MessageType: 'Listen' }));
  t.same((await listener.readPlist()).dict, { MessageType: 'Result', Number: 0 });
  t.equal((await listener.readPlist()).dict.DeviceID, 1, 'the simulated phone');

  // A phone that plugs in and never answers VERSION: attached, but hidden.
  const attached = waitFor<{ handle: number }>(setup.daemon.engine, 'attached', () => true, SLOW);
  const dev = new RawDevice(cable);
  t.teardown(() => dev.close());
  dev.sendDescriptor('00008101000000000000A001');
  await attached;
  const version = await recvPacket(dev.cable);
  t.ok(version, 'the daemon sent VERSION');
  t.equal(setup.daemon.devices.size, 2, 'the daemon knows both devices');
  const hidden = setup.daemon.devices.byUdid('00008101-000000000000A001');
  t.ok(hidden && !hidden.visible, 'the new one is not visible yet');
  const listed = await new UsbmuxClient({ address: setup.address }).listDevices();
  t.same(listed.map((d) => d.deviceId), [1], 'ListDevices leaves the hidden device out');
  const late = await RawClient.open(t, setup.socketPath);
  late.send(frame(0, 3, 1));
  await late.read(20);
  t.equal((await late.readFrame()).body.readUInt32LE(0), 1, 'a new Listen reports only the visible phone');
  t.equal((await late.drain(300)).length, 0, '...and not the hidden one');
  t.equal((await listener.drain(100)).length, 0, 'no Attached for a hidden device');

  // It answers: now it is visible, under the id it got when it attached.
  dev.cable.send(VERSION_REPLY_V2());
  const shown = await listener.readPlist();
  t.equal(shown.dict.MessageType, 'Attached', 'Attached once the handshake completes');
  t.equal(shown.dict.DeviceID, hidden?.deviceId, `with the DeviceID allocated at attach (${hidden?.deviceId})`);
  t.equal((await late.readFrame()).message, 4, 'the binary listener hears DEVICE_ADD too');
  t.same((await visibleDevices(setup.address, 2)).map((d) => d.deviceId), [1, hidden?.deviceId]);

  // A hidden device that leaves is never announced either way.
  const attached2 = waitFor<{ handle: number }>(setup.daemon.engine, 'attached', () => true, SLOW);
  const dev2 = new RawDevice(cable);
  t.teardown(() => dev2.close());
  dev2.sendDescriptor('00008101000000000000A002');
  await attached2;
  t.ok(await recvPacket(dev2.cable), 'VERSION to the second raw phone');
  const hiddenId = setup.daemon.devices.byUdid('00008101-000000000000A002')?.deviceId;
  dev2.close();
  await waitUntil(() => setup.daemon.devices.size === 2, 'the hidden device to go');
  t.equal((await listener.drain(300)).length, 0, 'no Detached for a device never shown');
  dev.close();
  const detached = await listener.readPlist();
  t.same(detached.dict, { MessageType: 'Detached', DeviceID: hidden?.deviceId }, 'Detached for the shown one');
  // The next phone gets a fresh id: neither the hidden one's nor the detached one's.
  const peer = await startPeer({ cable });
  t.teardown(() => peer.close());
  const next = await listener.readPlist();
  t.equal(next.dict.MessageType, 'Attached');
  t.ok((next.dict.DeviceID as number) > (hiddenId ?? Infinity), `a new DeviceID (${next.dict.DeviceID}) above the hidden device's (${hiddenId})`);
});

t.test('unplugging a phone closes its connected clients; its id then answers BADDEV', async (t) => {
  const cable = join(tempDir(t), 'cable');
  const setup = await startDaemon(t, { sims: 1, cables: [cable] });
  const peer = await startPeer({ cable });
  t.teardown(() => peer.close());
  const udid = `${peer.serial.slice(0, 8)}-${peer.serial.slice(8)}`;
  const dev = (await visibleDevices(setup.address, 2)).find((d) => d.serialNumber === udid);
  t.ok(dev, 'the phone is listed');
  const id = dev?.deviceId ?? -1;
  const c = await RawClient.open(t, setup.socketPath);
  c.send(plistRequest(1, { MessageType: 'Connect', DeviceID: id, PortNumber: ECHO_PORT << 8 }));
  t.same((await c.readPlist()).dict, { MessageType: 'Result', Number: 0 });
  c.send('ping');
  t.equal((await c.read(4)).toString(), 'ping');
  await peer.close();
  t.ok(await c.waitClosed(SLOW), 'the connected client is closed when its phone goes');
  const after = await RawClient.open(t, setup.socketPath);
  after.send(plistRequest(2, { MessageType: 'Connect', DeviceID: id, PortNumber: ECHO_PORT << 8 }));
  t.same((await after.readPlist()).dict, { MessageType: 'Result', Number: 2 }, 'Connect to the gone DeviceID: Result 2');
  const sim = await RawClient.open(t, setup.socketPath);
  sim.send(plistRequest(3, { MessageType: 'Connect', DeviceID: 1, PortNumber: ECHO_PORT << 8 }));
  t.same((await sim.readPlist()).dict, { MessageType: 'Result', Number: 0 }, 'the other phone is unaffected');
});

t.test('a client still writing when its phone goes gets EOF, not a reset', async (t) => {
  const cable = join(tempDir(t), 'cable');
  const setup = await startDaemon(t, { sims: 0, cables: [cable] });
  const peer = await startPeer({ cable });
  t.teardown(() => peer.close());
  const [dev] = await visibleDevices(setup.address, 1);
  const client = new UsbmuxClient({ address: `UNIX:${setup.socketPath}` });
  const socket = await client.connect(dev!.deviceId, ECHO_PORT);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  let echoed = 0;
  let writing = true;
  const ended = new Promise<string>((resolve) => {
    socket.on('data', (d: Buffer) => (echoed += d.length));
    socket.once('end', () => resolve('eof'));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  // Writes without pause, so bytes the daemon has not read yet sit in its
  // socket when the phone goes: closing then would reset the client.
  const pump = () => {
    while (writing && socket.write(chunk));
    if (writing) socket.once('drain', pump);
  };
  pump();
  await waitUntil(() => echoed > 4 * chunk.length, 'echoed bytes');
  await peer.close();
  const how = await within(ended, SLOW, 'the end of the client socket');
  writing = false;
  t.equal(how, 'eof', 'the client reads a clean end of file');
  socket.destroy();
});
