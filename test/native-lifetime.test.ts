// The event loop's lifetime rules (native/core/event_loop.h), checked in C++
// on real loop threads through the testing addon: a transport dropped from
// inside its own callback, a transport freed while its event waits in the
// same epoll batch, a Deferred freed while queued in the round being run.
// Under npm run test:asan a use-after-free in any of them aborts the run.
import t from 'tap';
import { nativeTesting } from '../src/native/testing.js';

t.test('lifetime probes', async (t) => {
  const results = nativeTesting().lifetimeProbes();
  t.equal(results.length, 3, 'three scenarios ran');
  for (const r of results) t.ok(r.ok, `${r.name}: ${r.detail}`);
});
