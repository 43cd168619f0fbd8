// After Connect the client library hands back a raw socket. A device service
// that speaks first (heartbeat sends Marco as soon as the host connects) must
// not lose those bytes before the caller attaches its listener.
import t from 'tap';
import { setTimeout as delay } from 'node:timers/promises';

import { UsbmuxClient } from '../src/client/index.js';
import { HEARTBEAT_SERVICE } from '../src/sim/services/heartbeat.js';
import { startDaemon } from './helpers/usbmuxd-harness.js';

async function connectSoon<T>(connect: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connect();
    } catch (err) {
      if (attempt >= 20 || !/CONNREFUSED/.test((err as Error).message)) throw err;
      await delay(50);
    }
  }
}

t.test('bytes a service sends at once wait for a late listener', async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const client = new UsbmuxClient({ address: `UNIX:${setup.socketPath}` });
  const [device] = await client.listDevices();
  const { lockdownd } = setup.peers[0]!;
  // What StartService would hand out, issued directly: this test is about the client.
  const port = lockdownd.openServicePort(lockdownd.services.lookUp(HEARTBEAT_SERVICE));
  // The port reaches the sim's data plane as posted work. In real use the
  // StartService reply, which leaves after it, orders the two; here nothing
  // does, and the daemon's Connect can win the race (a refusal does not use
  // up the one-connection port), so a refused Connect is tried again.
  const socket = await connectSoon(() => client.connect(device!.deviceId, port));
  t.teardown(() => socket.destroy());
  await delay(300);  // Marco has long arrived by now
  const first = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no bytes within 5 s')), 5000);
    socket.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve(d);
    });
  });
  t.ok(first.length > 4, 'the first frame is there');
  const length = first.readUInt32BE(0);
  t.ok(length > 0 && length < 4096, `a lockdown-framed plist of ${length} bytes`);
  t.match(first.subarray(4).toString('utf8'), /Marco/, 'it is the heartbeat Marco');
});
