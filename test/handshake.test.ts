// Host role <-> device role over a real cable: the handshake, a connection to
// a listening port, refusal of a closed one, and the connect timeout.
import t from 'tap';

import { NativeError } from '../src/native/addon.js';
import { ECHO_PORT } from '../src/protocol/sim-ports.js';
import { startPeer } from '../src/sim/peer.js';
import { openClient, RawDevice, readExactly, readyDevice, startHost, TH_RST, TH_SYN, waitFor, wire } from './helpers/harness.js';

t.test('a v2 device completes VERSION and SETUP; both roles report ready', async (t) => {
  const host = startHost(t);
  const attached = waitFor<{ udid: string; selection: { configuration: number; maxPacketSize: number } }>(host.engine, 'attached');
  const hostReady = waitFor<{ handle: number; version: number }>(host.engine, 'ready');
  const peer = await startPeer({ cable: host.cable, usb: { serial: '00008101000A1B2C3D4E5F60' } });
  t.teardown(() => peer.close());
  const peerReady = waitFor<{ version: number }>(peer.engine, 'ready');
  const dev = await attached;
  t.equal(dev.udid, '00008101-000A1B2C3D4E5F60', 'a 24-character serial becomes a dashed UDID');
  t.equal(dev.selection.configuration, 4, 'the highest configuration with the mux interface is chosen');
  t.equal(dev.selection.maxPacketSize, 512);
  t.equal((await hostReady).version, 2);
  t.equal((await peerReady).version, 2);
});

t.test('a v1 device is driven with 8-byte headers and no SETUP', async (t) => {
  const host = startHost(t);
  const hostReady = waitFor<{ handle: number; version: number }>(host.engine, 'ready');
  const peer = await startPeer({ cable: host.cable, version: 1 });
  t.teardown(() => peer.close());
  const ready = await hostReady;
  t.equal(ready.version, 1);
  const { socket } = await openClient(t, host, ready.handle, ECHO_PORT);
  socket.write('v1 framing');
  t.equal((await readExactly(socket, 10)).toString(), 'v1 framing', 'data flows over v1 framing');
});

t.test('Connect to a listening port carries bytes both ways', async (t) => {
  const host = startHost(t);
  const peer = await startPeer({ cable: host.cable });
  t.teardown(() => peer.close());
  const handle = await readyDevice(host.engine);
  const pipelined = Buffer.from('sent before the handover;');
  const { socket } = await openClient(t, host, handle, ECHO_PORT, pipelined);
  socket.write('then after it');
  const echoed = await readExactly(socket, pipelined.length + 13);
  t.equal(echoed.toString(), 'sent before the handover;then after it', 'pipelined bytes go first, in order');
});

t.test('Connect to a closed port is refused with ECONNREFUSED', async (t) => {
  const host = startHost(t);
  const peer = await startPeer({ cable: host.cable });
  t.teardown(() => peer.close());
  const handle = await readyDevice(host.engine);
  const err = await host.engine.connect(handle, 4242).catch((e: unknown) => e);
  t.type(err, NativeError);
  t.equal((err as NativeError).code, 'ECONNREFUSED');
  const again = await host.engine.connect(handle, ECHO_PORT);
  t.ok(again > 0, 'the device still accepts connections after a refusal');
});

t.test('Connect to a device that never answers times out and RSTs the SYN', async (t) => {
  const host = startHost(t);
  const dev = new RawDevice(host.cable);
  t.teardown(() => dev.close());
  dev.sendDescriptor();
  await waitFor(host.engine, 'attached');
  dev.handshake();
  const handle = await readyDevice(host.engine);
  const started = Date.now();
  const result = host.engine.connect(handle, 62078, 300).catch((e: unknown) => e);
  const syn = dev.recvPacket();
  t.ok(syn, 'the host sent a SYN');
  const decoded = wire.decodePacket(syn!, 2);
  t.equal(decoded.tcp!.flags, TH_SYN);
  t.equal(decoded.tcp!.dport, 62078);
  t.equal(decoded.tcp!.sport, 1, 'source ports start at 1');
  const err = (await result) as NativeError;
  t.equal(err.code, 'ETIMEDOUT');
  t.ok(Date.now() - started >= 290, 'it waited for the timeout');
  const rst = wire.decodePacket(dev.recvPacket()!, 2);
  t.equal(rst.tcp!.flags & TH_RST, TH_RST, 'the abandoned SYN is reset');
  t.equal(rst.tcp!.sport, 1);
});

t.test('Connect to an unknown device handle fails with ENODEV', async (t) => {
  const host = startHost(t);
  const err = (await host.engine.connect(999, 7).catch((e: unknown) => e)) as NativeError;
  t.equal(err.code, 'ENODEV');
});
