// A listener that throws on an engine event must not lose the rest of the
// batch nor escape into the addon's callback: the engine logs it and goes on.
import { once } from 'node:events';

import t from 'tap';

import type { LogEntry } from '../src/native/mux-engine.js';
import { startPeer } from '../src/sim/peer.js';
import { sleep, startHost } from './helpers/harness.js';

t.test('a throwing ready listener is logged and the device still works', async (t) => {
  const { engine, cable } = startHost(t);
  const logs: LogEntry[] = [];
  engine.on('log', (e) => logs.push(e));
  const readies: number[] = [];
  engine.on('ready', (r) => readies.push(r.handle));
  let throws = 1;
  engine.on('ready', () => {
    if (throws-- > 0) throw new Error('listener bug');
  });
  const first = await startPeer({ cable });
  t.teardown(() => first.close());
  const second = await startPeer({ cable });
  t.teardown(() => second.close());
  for (let i = 0; i < 200 && readies.length < 2; i++) await sleep(50);
  t.equal(readies.length, 2, 'both phones are ready, the one whose listener threw included');
  const error = logs.find((l) => l.level === 'error');
  t.match(error?.text, /a listener of the 'ready' event threw: Error: listener bug/, 'the throw is logged with its stack');
  const conn = await engine.connect(readies[0], 7);
  t.ok(conn > 0, 'the first phone accepts connections');
  engine.closeConnection(conn);
  await once(engine, 'closed');
});
