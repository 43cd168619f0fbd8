// The service registry (src/registry): every bootstrap error with its Darwin
// code, names freed when their owner dies (a real child process killed, a
// real listener closed) with the watchers told, on-demand launch under 50
// concurrent lookUps over real sockets, one namespace per device, the RSD
// Services rendering, and the sim's StartService table coming from it.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

import {
  BootstrapError,
  rsdServicesDict,
  ServiceOwner,
  ServiceRegistry,
  type BootstrapErrorCode,
  type RegistryEvent,
} from '../src/registry/index.js';
import { AFC_SERVICE } from '../src/sim/services/afc.js';
import { HEARTBEAT_SERVICE } from '../src/sim/services/heartbeat.js';
import { ECHO_SERVICE } from '../src/protocol/sim-ports.js';
import { startPeer } from '../src/sim/peer.js';
import { readyDevice, startHost, tempDir } from './helpers/harness.js';

function rejects(t: Test, fn: () => unknown, code: BootstrapErrorCode, darwinCode: number, what: string): void {
  try {
    fn();
    t.fail(`${what}: no error`);
  } catch (err) {
    t.ok(err instanceof BootstrapError, `${what}: a BootstrapError`);
    t.match(err, { code, darwinCode }, `${what}: ${code} (${darwinCode})`);
  }
}

function connectTo(address: string | number): Socket {
  return typeof address === 'string' ? createConnection(address) : createConnection(address, '127.0.0.1');
}

function echoHandler(socket: Socket): void {
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
}

/** Writes `text`, resolves with what comes back once that many bytes have. */
function roundTrip(address: string | number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTo(address);
    let got = '';
    socket.on('error', reject);
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        socket.destroy();
        resolve(got);
      }
    });
    socket.on('close', () => reject(new Error(`closed after '${got}'`)));
    socket.write(text);
  });
}

t.test('every error carries its Darwin code', async (t) => {
  const registry = new ServiceRegistry({ namesPerNamespace: 3, maxNamespaces: 2 });
  t.teardown(() => registry.close());
  const ns = registry.namespace('00008101-000000000000CAFE');
  const owner = new ServiceOwner('test');
  const other = new ServiceOwner('someone else');
  ns.register('com.example.a', owner, 1);
  rejects(t, () => ns.register('com.example.a', other, 2), 'NAME_IN_USE', 1101, 'register a held name');
  await t.rejects(ns.declare('com.example.a'), { code: 'NAME_IN_USE', darwinCode: 1101 }, 'declare a held name');
  rejects(t, () => ns.lookUp('com.example.missing'), 'UNKNOWN_SERVICE', 1102, 'lookUp an unknown name');
  rejects(t, () => ns.checkIn('com.example.missing', owner, echoHandler), 'UNKNOWN_SERVICE', 1102, 'checkIn an undeclared name');
  await ns.declare('com.example.declared');
  ns.checkIn('com.example.declared', owner, echoHandler);
  rejects(t, () => ns.checkIn('com.example.declared', other, echoHandler), 'SERVICE_ACTIVE', 1103, 'checkIn twice');
  rejects(t, () => ns.checkIn('com.example.a', other, echoHandler), 'SERVICE_ACTIVE', 1103, 'checkIn a registered name');
  rejects(t, () => ns.lookUpArray(Array.from({ length: 21 }, (_, i) => `n${i}`)), 'BAD_COUNT', 1104, '21 names in lookUpArray');
  ns.register('com.example.third', owner, 3);
  rejects(t, () => ns.register('com.example.fourth', owner, 4), 'NO_MEMORY', 1105, 'a name past the capacity of 3');
  registry.namespace('second');
  rejects(t, () => registry.namespace('third'), 'NO_MEMORY', 1105, 'a namespace past the limit of 2');
  rejects(t, () => ns.release('com.example.a', other), 'NOT_PRIVILEGED', 1100, 'release by a non-owner');
  const long = `com.example.${'x'.repeat(128 - 'com.example.'.length)}`;
  t.equal(Buffer.byteLength(long), 128);
  rejects(t, () => ns.lookUp(long), 'BAD_NAME', 4, 'a 128-byte name');
  rejects(t, () => ns.register('é'.repeat(64), owner, 5), 'BAD_NAME', 4, '64 two-byte characters are 128 bytes');
  rejects(t, () => ns.lookUp(''), 'BAD_NAME', 4, 'an empty name');
  ns.release('com.example.third', owner);
  const name127 = 'x'.repeat(127);
  t.equal(ns.register(name127, owner, 6).name, name127, 'a 127-byte name is fine');
  t.same(
    ns.lookUpArray(['com.example.a', 'com.example.missing']).map((s) => s?.address ?? null),
    [1, null],
    'lookUpArray: known names answered, unknown ones null',
  );
  t.same(ns.lookUpArray(Array.from({ length: 20 }, () => 'com.example.a')).length, 20, '20 names are allowed');
});

t.test('capacity is configuration: 200 names in one namespace', async (t) => {
  const registry = new ServiceRegistry({ namesPerNamespace: 200 });
  const ns = registry.namespace('big');
  const owner = new ServiceOwner('test');
  for (let i = 0; i < 200; i++) ns.register(`com.example.n${i}`, owner, 1000 + i);
  t.equal(ns.size, 200, 'more than 64 names');
  rejects(t, () => ns.register('com.example.n200', owner, 1), 'NO_MEMORY', 1105, 'the 201st');
  owner.die();
  t.equal(ns.size, 0, 'all freed when their owner dies');
  t.throws(() => new ServiceRegistry({ namesPerNamespace: -1 }), TypeError, 'a negative capacity is refused');
});

t.test('a dead owner frees its names and the watchers hear of it', async (t) => {
  const registry = new ServiceRegistry({ startThrottleMs: 0 });
  t.teardown(() => registry.close());
  const ns = registry.namespace('phone');
  const events: RegistryEvent[] = [];
  registry.watch((e) => events.push(e));

  // A child process holds a name; SIGKILL is its death.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  await once(child, 'spawn');
  ns.register('com.example.child', ServiceOwner.forProcess(`pid ${child.pid}`, child), 4242);
  t.equal(ns.lookUp('com.example.child').status, 'active');
  child.kill('SIGKILL');
  await once(child, 'exit');
  t.match(
    events.find((e) => e.type === 'unregistered'),
    { type: 'unregistered', name: 'com.example.child', owner: `pid ${child.pid}`, reason: 'killed by SIGKILL' },
    'the watcher hears the name go, with the signal',
  );
  rejects(t, () => ns.lookUp('com.example.child'), 'UNKNOWN_SERVICE', 1102, 'the name is gone');
  t.equal(ns.register('com.example.child', new ServiceOwner('next'), 1).status, 'active', 'and free to take again');

  // A listener holds a name; closing it is its death.
  const server = createServer(echoHandler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  ns.register('com.example.server', ServiceOwner.forServer('echo', server), port);
  t.equal(await roundTrip(ns.lookUp('com.example.server').address, 'hi'), 'hi', 'reachable while it listens');
  await new Promise<void>((r) => server.close(() => r()));
  t.match(events.at(-1), { type: 'unregistered', name: 'com.example.server', reason: 'its listener closed' });
  t.notOk(ns.find('com.example.server'), 'gone with its listener');

  // A declared name goes back to on-demand when its owner dies, and the next lookUp relaunches it.
  let launches = 0;
  let owner = new ServiceOwner('first');
  await ns.declare('com.example.demand', {
    start: (name, space) => {
      launches++;
      owner = new ServiceOwner(`launch ${launches}`);
      space.checkIn(name, owner, echoHandler);
    },
  });
  const address = ns.lookUp('com.example.demand').address;
  t.equal(await roundTrip(address, 'one'), 'one');
  owner.die('crashed');
  t.match(events.at(-1), { type: 'inactive', name: 'com.example.demand', owner: 'launch 1', reason: 'crashed' });
  t.equal(ns.find('com.example.demand')?.status, 'onDemand', 'waiting for a launch again');
  t.equal(await roundTrip(address, 'two'), 'two', 'a connection relaunches it');
  t.equal(launches, 2, 'launched twice in all');
});

t.test('on demand: 50 concurrent lookUps, one launch, every caller served', async (t) => {
  const registry = new ServiceRegistry({ socketDir: tempDir(t) });
  t.teardown(() => registry.close());
  const ns = registry.namespace('phone');
  let launches = 0;
  await ns.declare('com.example.slow', {
    start: async (name, space) => {
      launches++;
      await delay(300);  // a slow start: everyone connects before it checks in
      space.checkIn(name, new ServiceOwner('slow'), echoHandler);
    },
  });
  t.equal(ns.find('com.example.slow')?.status, 'onDemand');
  const answers = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const { address } = ns.lookUp('com.example.slow');
      return roundTrip(address, `caller ${i}`);
    }),
  );
  t.same(answers, Array.from({ length: 50 }, (_, i) => `caller ${i}`), 'all 50 answered, each with its own bytes');
  t.equal(launches, 1, 'launched once');
  t.equal(ns.find('com.example.slow')?.status, 'active');

  // A service that fails to start closes its waiting callers instead of leaving them hanging.
  const failures: RegistryEvent[] = [];
  ns.watch((e) => e.type === 'startFailed' && failures.push(e));
  await ns.declare('com.example.broken', { start: () => Promise.reject(new Error('no binary')) });
  const socket = connectTo(ns.lookUp('com.example.broken').address);
  socket.on('error', () => {});
  await once(socket, 'close');
  t.match(failures[0], { name: 'com.example.broken', reason: /no binary/ }, 'startFailed, with the reason');
});

t.test('one namespace per device; the RSD Services list', async (t) => {
  const registry = new ServiceRegistry();
  t.teardown(() => registry.close());
  const a = registry.namespace('A');
  const b = registry.namespace('B');
  const owner = new ServiceOwner('test');
  a.register('com.apple.afc', owner, 1, { devicePort: 50001 });
  b.register('com.apple.afc', owner, 2, { devicePort: 50002, entitlement: 'com.apple.afc.entitlement', properties: { UsesRemoteXPC: false } });
  t.equal(a.lookUp('com.apple.afc').address, 1);
  t.equal(b.lookUp('com.apple.afc').address, 2, 'the same name in two namespaces');
  a.register('com.apple.portless', owner, 3);
  t.same(rsdServicesDict(a), {
    'com.apple.afc': { Entitlement: 'com.apple.mobile.lockdown.remote.trusted', Port: '50001', Properties: {} },
  }, 'Port as a decimal string, a default Entitlement; names without a port are left out');
  t.same(rsdServicesDict(b, (s) => (s.devicePort ?? 0) + 1), {
    'com.apple.afc': { Entitlement: 'com.apple.afc.entitlement', Port: '50003', Properties: { UsesRemoteXPC: false } },
  }, 'ports from the caller');
});

t.test('the sim: StartService comes from its namespace, AFC starts on demand', async (t) => {
  const host = startHost(t);
  const ready = readyDevice(host.engine);
  const peer = await startPeer({ cable: host.cable });
  t.teardown(() => peer.close());
  await ready;
  const names = peer.namespace.list().map((s) => `${s.name}:${s.status}`);
  t.match(names, [
    'com.apple.afc:onDemand',
    'com.apple.mobile.heartbeat:active',
    'com.apple.mobile.insecure_notification_proxy:active',
    'com.apple.mobile.notification_proxy:active',
    'com.tsmuxd.test.echo:active',
    'com.tsmuxd.test.sink:active',
    'com.tsmuxd.test.source:active',
  ]);
  t.equal(peer.namespace.id, peer.identity.udid, 'the namespace is the UDID');
  t.equal(peer.namespace.find(ECHO_SERVICE)?.devicePort, 7);
  const session = { session: { id: 'S', hostId: 'H' } };
  const ask = (service: string) => peer.lockdownd.handle(session, { Request: 'StartService', Service: service });
  t.same(ask('com.apple.nope'), { Request: 'StartService', Service: 'com.apple.nope', Error: 'InvalidService' });
  t.same(ask('x'.repeat(200)), { Request: 'StartService', Service: 'x'.repeat(200), Error: 'InvalidService' }, 'a bad name too');
  t.match(ask(HEARTBEAT_SERVICE), { Port: Number });
  t.match(ask(AFC_SERVICE), { Service: AFC_SERVICE, Port: Number });
  t.equal(await waitStatus(peer.namespace, AFC_SERVICE, 'active'), 'active', 'the first StartService launched AFC');
});

async function waitStatus(ns: { find(n: string): { status: string } | undefined }, name: string, status: string): Promise<string> {
  for (let i = 0; i < 200 && ns.find(name)?.status !== status; i++) await delay(10);
  return ns.find(name)?.status ?? 'missing';
}
