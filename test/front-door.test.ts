// The usbmuxd socket's native front door (native/engine/client_door.h,
// src/server/front-door.ts): the data plane accepts clients and reads their
// first message; a Connect is decided without a JS socket and answered by
// the data plane, anything else is served by a session on the same fd. Raw
// sockets, a real daemon and a simulated phone.
import { statSync } from 'node:fs';
import net from 'node:net';

import t from 'tap';

import { ECHO_PORT } from '../src/protocol/sim-ports.js';
import { swapPort } from '../src/protocol/usbmux.js';
import { sleep } from './helpers/harness.js';
import { binaryConnect, binaryResult, plistRequest, RawClient, SLOW, startDaemon, within } from './helpers/usbmuxd-harness.js';

t.test('the front door', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const device = setup.daemon.devices.visible()[0]!;
  const connectPlist = (tag: number, port: number) =>
    plistRequest(tag, { MessageType: 'Connect', DeviceID: device.deviceId, PortNumber: swapPort(port) });

  t.equal(statSync(setup.socketPath).mode & 0o777, 0o666, 'the socket is 0666, as usbmuxd makes it');

  await t.test('a Connect with bytes written behind it in the same write: Result 0, then every byte echoed', async (t) => {
    const c = await RawClient.open(t, setup.socketPath);
    const payload = Buffer.from('sent in the same write as the Connect');
    c.send(Buffer.concat([connectPlist(5, ECHO_PORT), payload]));
    const { frame, dict } = await c.readPlist();
    t.equal(frame.tag, 5, 'the Result carries the request tag');
    t.equal(dict.Number, 0, 'Result 0');
    t.ok((await c.read(payload.length)).equals(payload), 'the bytes behind the Connect reached the device and came back');
  });

  await t.test('a binary Connect (version 0) is answered in version 0', async (t) => {
    const c = await RawClient.open(t, setup.socketPath);
    c.send(binaryConnect(9, device.deviceId, ECHO_PORT));
    t.ok((await c.read(20)).equals(binaryResult(9, 0)), 'binary Result 0 with tag 9');
    c.send('binary');
    t.equal((await c.read(6)).toString(), 'binary', 'echoed');
  });

  await t.test('a refused Connect: Result 3, and the same socket goes on serving requests', async (t) => {
    const c = await RawClient.open(t, setup.socketPath);
    c.send(connectPlist(3, 4242));
    const refused = await c.readPlist();
    t.equal(refused.dict.Number, 3, 'CONNREFUSED for a closed port');
    c.send(plistRequest(4, { MessageType: 'ListDevices' }));
    const list = await c.readPlist();
    t.equal(list.frame.tag, 4, 'the next request is answered');
    t.equal((list.dict.DeviceList as unknown[]).length, 1, 'with the phone in it');
  });

  await t.test('a Connect to an unknown device is answered by a session: Result 2', async (t) => {
    const c = await RawClient.open(t, setup.socketPath);
    c.send(plistRequest(6, { MessageType: 'Connect', DeviceID: 9999, PortNumber: swapPort(ECHO_PORT) }));
    t.equal((await c.readPlist()).dict.Number, 2, 'BADDEV');
  });

  await t.test('a first message split around the door\'s wait (1 s) is still served', async (t) => {
    const c = await RawClient.open(t, setup.socketPath);
    const request = plistRequest(8, { MessageType: 'ListDevices' });
    c.send(request.subarray(0, 10));
    await sleep(1_300);
    c.send(request.subarray(10));
    const { frame } = await c.readPlist();
    t.equal(frame.tag, 8, 'answered after the door handed the half-sent client to a session');
  });

  await t.test('more clients than the door holds (256), all idle, do not keep a later one waiting', async (t) => {
    const idle: net.Socket[] = [];
    t.teardown(() => idle.forEach((s) => s.destroy()));
    for (let i = 0; i < 300; i++) {
      const s = net.connect(setup.socketPath);
      s.on('error', () => {});
      idle.push(s);
    }
    await within(Promise.all(idle.map((s) => new Promise((resolve) => s.once('connect', resolve)))), SLOW, 'the idle clients connect');
    const c = await RawClient.open(t, setup.socketPath);
    c.send(connectPlist(11, ECHO_PORT));
    t.equal((await c.readPlist()).dict.Number, 0, 'a Connect behind them succeeds');
    c.send('late');
    t.equal((await c.read(4)).toString(), 'late', 'and moves bytes');
  });

  await t.test('a client that connects and leaves at once costs nothing: the daemon serves the next', async (t) => {
    for (let i = 0; i < 50; i++) {
      const s = net.connect(setup.socketPath);
      s.on('error', () => {});
      s.on('connect', () => s.destroy());
    }
    const c = await RawClient.open(t, setup.socketPath);
    c.send(plistRequest(12, { MessageType: 'ReadBUID' }));
    t.match((await c.readPlist()).dict.BUID, /^[0-9A-F-]{36}$/, 'ReadBUID answered');
    const d = await RawClient.open(t, setup.socketPath);
    d.send(connectPlist(13, ECHO_PORT));
    t.equal((await d.readPlist()).dict.Number, 0, 'and a Connect after them');
  });
});
