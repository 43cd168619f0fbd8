// Clients that leave mid-Connect (no connection may leak in the engine) and
// thousands of idle clients at once (all stay connected while a fresh
// client is still answered quickly).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

import t, { type Test } from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import type { MuxEngine } from '../src/native/mux-engine.js';
import { SINK_PORT } from '../src/protocol/sim-ports.js';
import {
  binaryConnect,
  binaryResult,
  hex,
  plistRequest,
  RawClient,
  sleep,
  startDaemon,
  waitUntil,
  within,
  type DaemonSetup,
} from './helpers/usbmuxd-harness.js';

let setup: DaemonSetup;
let deviceId: number;

t.before(async () => {
  setup = await startDaemon(t, { sims: 1 });
  deviceId = setup.daemon.devices.visible()[0].deviceId;
});

async function healthy(t: Test, what: string): Promise<void> {
  const started = Date.now();
  const devices = await within(new UsbmuxClient({ address: setup.address, timeoutMs: 10_000 }).listDevices(), 15_000, 'ListDevices');
  t.equal(devices.length, 1, `after ${what}: a fresh client's ListDevices sees the phone (${Date.now() - started} ms)`);
  const c = await RawClient.open(t, setup.socketPath);
  c.send(binaryConnect(1, deviceId, 7));
  t.equal(hex(await c.read(20)), hex(binaryResult(1, 0)), `after ${what}: a new Connect succeeds`);
  const token = randomBytes(32);
  c.send(token);
  t.equal(hex(await c.read(32)), hex(token), `after ${what}: and echoes`);
  c.destroy();
}

const simEngine = (): MuxEngine | undefined => (setup.daemon as unknown as { simEngine?: MuxEngine }).simEngine;

t.test('clients that close mid-Connect leak no connection', async (t) => {
  const engine = setup.daemon.engine;
  // Earlier clients (the startup ListDevices) may still be closing.
  await waitUntil(() => engine.stats().connectionsActive === 0 && setup.daemon.server.clientCount === 0, 'an idle daemon');
  const baseline = engine.stats().connectionsActive;
  const clientsBefore = setup.daemon.server.clientCount;
  const totalBefore = engine.stats().connectionsTotal;

  const ROUNDS = 60;
  for (let i = 0; i < ROUNDS; i++) {
    const c = await RawClient.open(t, setup.socketPath);
    switch (i % 6) {
      case 0: // closed in the same tick as the request
        c.send(binaryConnect(1, deviceId, 7));
        c.destroy();
        break;
      case 1: // plist Connect, then a half-close
        c.send(plistRequest(1, { MessageType: 'Connect', DeviceID: deviceId, PortNumber: 0x0700 }));
        c.socket.end();
        break;
      case 2: // pipelined payload, then closed
        c.send(Buffer.concat([binaryConnect(1, deviceId, 7), randomBytes(4096)]));
        c.destroy();
        break;
      case 3: // closed a moment later, maybe before, maybe after the Result
        c.send(binaryConnect(1, deviceId, 7));
        await sleep(i % 4);
        c.destroy();
        break;
      case 4: // a large pipelined upload to the sink, abandoned
        c.send(Buffer.concat([binaryConnect(1, deviceId, SINK_PORT), Buffer.from('00000000000f4240', 'hex'), randomBytes(200_000)]));
        await sleep(1);
        c.destroy();
        break;
      case 5: // a refused Connect, then closed
        c.send(binaryConnect(1, deviceId, 4242));
        c.destroy();
        break;
    }
  }
  // Give every attempt time to finish (connected, refused or abandoned), then
  // it must settle at the baseline and stay there.
  await sleep(500);
  const settled = await waitUntil(
    () => engine.stats().connectionsActive === baseline && setup.daemon.server.clientCount === clientsBefore,
    'connections and clients to return to their baseline',
    30_000,
  ).catch(() => false);
  await sleep(1000);
  const s = engine.stats();
  t.ok(settled, `connectionsActive back to ${baseline} (is ${s.connectionsActive}); clients back to ${clientsBefore} (is ${setup.daemon.server.clientCount})`);
  t.equal(s.connectionsActive, baseline, 'no leaked host-side mux connection');
  t.equal(setup.daemon.server.clientCount, clientsBefore, 'no leaked client session');
  t.comment(`engine: ${s.connectionsTotal - totalBefore} connections opened during the test, ${s.rstsOut} RSTs sent in total`);
  const phone = simEngine();
  if (phone) {
    const gone = await waitUntil(() => phone.stats().connectionsActive === 0, 'the phone side to drop them too', 30_000).catch(() => false);
    t.ok(gone, `the phone's side has no connection left either (is ${phone.stats().connectionsActive})`);
  }
  await healthy(t, 'abandoned Connects');
});

/** The soft fd limit a child of this process gets. */
function fdLimit(): number {
  const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? 1 << 20 : Number(out);
}

const rssMiB = () => (process.memoryUsage().rss / 1024 / 1024).toFixed(1);

t.test('10,000 idle clients (or as many as the fd limit allows)', async (t) => {
  const limit = fdLimit();
  const count = Math.max(100, Math.min(10_000, limit - 500));
  t.comment(`fd limit ${limit}: opening ${count} idle clients (from a child process; the daemon side holds ${count} fds here)`);
  await waitUntil(() => setup.daemon.server.clientCount === 0, 'no client sessions left over');
  const clientsBefore = setup.daemon.server.clientCount;
  global.gc?.();
  t.comment(`daemon process RSS before: ${rssMiB()} MiB`);

  const script = fileURLToPath(new URL('./helpers/idle-clients.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, setup.socketPath, String(count), '4'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! });
  const nextLine = async (what: string, ms = 120_000): Promise<Record<string, unknown>> => {
    const [line] = (await within(once(lines, 'line'), ms, what)) as [string];
    return JSON.parse(line) as Record<string, unknown>;
  };

  const opened = await nextLine('the child to open its connections', 180_000);
  t.comment(`child: ${JSON.stringify(opened)}`);
  t.equal(opened.opened, count, `all ${count} connections were accepted`);
  t.equal(opened.failed, 0, 'none failed');
  const seen = await waitUntil(() => setup.daemon.server.clientCount >= clientsBefore + count, 'the daemon to hold them all', 60_000).catch(() => false);
  t.ok(seen, `the daemon holds ${setup.daemon.server.clientCount - clientsBefore} client sessions`);
  t.comment(`daemon process RSS with ${count} idle clients: ${rssMiB()} MiB`);

  // A fresh client is still answered quickly, several times over.
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = Date.now();
    const devices = await within(new UsbmuxClient({ address: setup.address, timeoutMs: 10_000 }).listDevices(), 15_000, 'ListDevices');
    times.push(Date.now() - started);
    t.equal(devices.length, 1, `ListDevices ${i + 1} sees the phone`);
  }
  t.comment(`ListDevices with ${count} idle clients: ${times.join(', ')} ms`);
  t.ok(Math.min(...times) < 1000, `answered quickly (best ${Math.min(...times)} ms)`);
  t.ok(Math.max(...times) < 5000, `never slow (worst ${Math.max(...times)} ms)`);
  await healthy(t, `${count} idle clients`);

  child.stdin!.write('status\n');
  const status = await nextLine('the child status', 30_000);
  t.equal(status.open, count, 'every idle client is still connected');
  t.equal(status.closed, 0, 'none was closed by the daemon');
  t.equal(status.received, 0, 'and none was sent anything');
  t.equal(setup.daemon.server.clientCount, clientsBefore + count, 'the daemon still has all their sessions');

  child.stdin!.write('exit\n');
  await within(once(child, 'exit'), 30_000, 'the child to exit');
  const gone = await waitUntil(() => setup.daemon.server.clientCount === clientsBefore, 'the sessions to be released', 60_000).catch(() => false);
  t.ok(gone, `all sessions released when the clients go (${setup.daemon.server.clientCount - clientsBefore} left)`);
  global.gc?.();
  t.comment(`daemon process RSS after they left: ${rssMiB()} MiB`);
  await healthy(t, 'the idle clients left');
});
