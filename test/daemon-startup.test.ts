// What the daemon loads before it serves (docs/architecture.md, "Start-up"):
// each module is a file read and compiled before the socket is up or a phone
// is listed, seconds of them on the USB lab's emulated CPU. The command is
// run with a module trace (helpers/module-trace-preload.mjs) and a simulated
// phone on a cable; what had loaded when the socket was up, when the phone
// was first listed (pairing) and when it was listed again by a restarted
// daemon (a paired phone) is checked against what those moments need.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import t, { type Test } from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { startPeer, type Peer } from '../src/sim/peer.js';
import { sleep, spawnDaemon, tempDir, type DaemonProcess } from './helpers/daemon-process.js';

const PRELOAD = fileURLToPath(new URL('./helpers/module-trace-preload.mjs', import.meta.url));

/** Never before the socket is up: each has a moment of its own, or none in this daemon. */
const NOT_AT_START: Array<[string, RegExp]> = [
  ['node-forge', /\/node_modules\/node-forge\//],
  ["the plist package's builder (xmlbuilder)", /\/node_modules\/(xmlbuilder\/|plist\/dist\/(index|build)\.js)/],
  ['the usb package', /\/node_modules\/usb\//],
  ['USB discovery (--no-usb)', /\/src\/usb\//],
  ['the sim and its supervisor', /\/src\/(sim|supervisor|registry)\//],
  ['RemoteXPC, AFC, the client library, the benchmark', /\/src\/(xpc|afc|client|bench)\//],
  ['a tunnel start', /\/src\/tunnel\/core-device-proxy\./],
  ['pairing', /\/src\/(pairing\/(pair|x509)|preflight\/notifications)\./],
  ['-U', /\/src\/cli\/privileges\./],
  ['the ws package (the first tunneld /connect loads it)', /\/node_modules\/ws\//],
  ['--help and --sim-trust', /\/src\/(cli\/daemon-help|protocol\/sim-control)\./],
];

function loaded(trace: string): string[] {
  try {
    return readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function checkAbsent(t: Test, modules: string[], rules: Array<[string, RegExp]>, when: string): void {
  for (const [name, re] of rules) {
    const hits = modules.filter((m) => re.test(m));
    t.same(hits, [], `${when}: nothing of ${name}`);
  }
}

type Run = { daemon: DaemonProcess; trace: string; address: string };

async function startTraced(t: Test, dir: string, n: number): Promise<Run> {
  const trace = join(dir, `modules-${n}.txt`);
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${PRELOAD}`, TSMUXD_MODULE_TRACE: trace };
  // The tunnel APIs on, as the command's defaults have them (on ports of their own here).
  const apis = ['--tunneld-api', '127.0.0.1:0', '--go-ios-api', '127.0.0.1:0'];
  const args = ['-f', '-S', join(dir, 'sock'), '-P', 'NONE', '-C', join(dir, 'lockdown'), '--no-usb', '--cable', join(dir, 'cable'), ...apis];
  const daemon = spawnDaemon(t, args, env);
  const address = await daemon.ready(30_000);
  return { daemon, trace, address };
}

/** Resolves with the modules loaded by the time `udid` is listed. */
async function whenListed(run: Run, udid: string): Promise<string[]> {
  const listener = await new UsbmuxClient({ address: run.address }).listen();
  try {
    for await (const ev of listener) {
      if (ev.type === 'attached' && ev.device.serialNumber.replace('-', '') === udid.replace('-', '')) return loaded(run.trace);
    }
  } finally {
    listener.close();
  }
  throw new Error('the Listen connection ended');
}

async function plugWhenAccepted(peer: Peer): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      peer.plug();
      return;
    } catch (err) {
      if (i > 100) throw err;
      await sleep(50);
    }
  }
}

t.test('the socket up, a phone paired and listed, listed again after a restart', async (t) => {
  const dir = tempDir(t, 'tsmuxd-startup-');

  const first = await startTraced(t, dir, 1);
  const atStart = loaded(first.trace);
  t.ok(atStart.some((m) => m.endsWith('/src/server/server.js')), 'the trace sees the daemon load (the server)');
  t.ok(atStart.some((m) => /\/node_modules\/plist\/dist\/parse\.js$/.test(m)), "the plist package's parser is loaded, from its own module");
  checkAbsent(t, atStart, NOT_AT_START, 'socket up');
  const apiModules = atStart.filter((m) => /\/src\/tunnel-api\//.test(m));
  t.ok(apiModules.some((m) => m.endsWith('/tunneld-api.js')), 'the tunnel APIs are up when the daemon says ready');
  t.comment(`${atStart.length} modules loaded when ready, ${apiModules.length} of them the tunnel APIs' (loaded after the socket)`);

  const peer = await startPeer({ cable: join(dir, 'cable'), stateDir: join(dir, 'sim') });
  t.teardown(() => peer.close());
  const pairing = await whenListed(first, peer.identity.udid);
  t.ok(pairing.some((m) => /\/src\/pairing\/x509\.js$/.test(m)), 'pairing loaded the certificate writer (the trace sees lazy imports)');
  checkAbsent(t, pairing, NOT_AT_START.filter(([name]) => /forge|xmlbuilder/.test(name)), 'listed after pairing');

  await first.daemon.stop();
  for (let i = 0; i < 100 && peer.plugged; i++) await sleep(50);
  if (peer.plugged) peer.unplug();

  const second = await startTraced(t, dir, 2);
  await plugWhenAccepted(peer);
  const paired = await whenListed(second, peer.identity.udid);
  checkAbsent(t, paired, NOT_AT_START, 'a paired phone listed');
  t.ok(paired.some((m) => m.endsWith('/src/preflight/preflight.js')), 'the preflight ran');
  await second.daemon.stop();
});
