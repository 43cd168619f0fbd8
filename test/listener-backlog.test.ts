// A Listen client that never reads: the events queued for it are bounded.
// Past the limit the daemon closes it (and says so); a listener that reads
// keeps every event.
import t from 'tap';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as plist from 'plist';

import { UsbmuxClient } from '../src/client/index.js';
import { Logger } from '../src/util/log.js';
import { plistRequest, startDaemon, tempDir, waitUntil } from './helpers/usbmuxd-harness.js';

t.test('a listener that reads nothing is closed once 64 KiB of events wait for it', async (t) => {
  const logFile = join(tempDir(t), 'daemon.log');
  const setup = await startDaemon(t, { sims: 1, maxUnreadNotificationBytes: 64 * 1024, log: new Logger({ file: logFile, verbosity: 4 }) });
  const client = new UsbmuxClient({ address: setup.address });
  const [device] = await client.listDevices();

  const deaf = net.connect(setup.socketPath);
  t.teardown(() => deaf.destroy());
  deaf.pause();  // never reads: the kernel's buffer fills, then the daemon's
  deaf.write(plistRequest(1, { MessageType: 'Listen' }));

  const hearing = await client.listen();
  t.teardown(() => hearing.close());
  let paired = 0;
  const counting = (async () => {
    for await (const e of hearing) if (e.type === 'paired') paired++;
  })();

  // Every SavePairRecord with the DeviceID broadcasts Paired to all listeners.
  const record = Buffer.from(plist.build({ HostID: 'H', SystemBUID: 'S' }));
  let saves = 0;
  const closedLine = /client \d+ (\(pid \d+, uid \d+\) )?closed: a listener with \d+ bytes of notifications unread/;
  const log = () => readFileSync(logFile, 'utf8');
  while (!closedLine.test(log())) {
    await client.savePairRecord(device!.serialNumber, record, device!.deviceId);
    saves++;
    if (saves > 5000) break;
  }
  t.ok(saves <= 5000, `the deaf listener was closed after ${saves} Paired events`);
  await waitUntil(() => paired === saves, 'every Paired event at the reading listener');
  t.equal(paired, saves, 'the listener that reads got every event');
  t.same((await client.listDevices()).map((d) => d.deviceId), [device!.deviceId], 'the daemon still answers');
  hearing.close();
  await counting.catch(() => undefined);
});
