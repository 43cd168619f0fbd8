// The linux-arm64 prebuild, on this x64 machine: the npm registry's arm64
// node runs under qemu-user on Debian's arm64 libraries (scripts/arm64-node.sh)
// and loads prebuilds/linux-arm64/ as it would on an arm64 board. The subset:
//   - the addons load: `tsmuxd version` names the arm64 prebuild and its
//     source hash, and the testing addon loads beside it;
//   - the daemon and one simulated phone, both emulated, the phone on the
//     daemon's virtual cable: Debian's x64 idevice_id lists it over the
//     daemon's Unix socket;
//   - the mux core over that cable, host role in the daemon and device role in
//     the phone: 16 MiB to the phone's sink and 16 MiB from its source, each
//     hashed at both ends.
// Under plain qemu-aarch64 an emulated process cannot spawn process.execPath
// (ENOEXEC: no binfmt_misc handler is registered), so the daemon runs without
// --sim and the phone is started here as its own emulated process
// (sim-peer-main.js, the process the supervisor would spawn); the daemon runs
// with -p, since pairing is TypeScript and costs a minute emulated.
//
// npm run test:arm64 (scripts/test-arm64.sh) sets the emulation up and runs
// this file with TSMUXD_ARM64_NODE; npm test leaves test/arm64/ out.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { uploadVerified, downloadVerified } from '../../src/bench/verified.js';
import { UsbmuxClient } from '../../src/client/index.js';
import { SINK_PORT, SOURCE_PORT } from '../../src/protocol/sim-ports.js';
import { computeNativeHash, prebuildDir, repoRoot } from '../../scripts/native-hash.mjs';
import { findOnPath, MAIN_JS, run, spawnDaemon, tempDir, waitUntil } from '../helpers/daemon-process.js';
import { startDeviceProcess } from '../helpers/harness.js';
import { requireTool } from '../helpers/system-tools.js';

const MiB = 1024 * 1024;
const TRANSFER = 16 * MiB;
/** An emulated node takes 2-4 s to start and runs JavaScript ten or more times slower. */
const EMULATED_MS = 180_000;

const arm64Node = process.env.TSMUXD_ARM64_NODE;
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;

if (!arm64Node) {
  t.plan(0, 'TSMUXD_ARM64_NODE is not set: npm run test:arm64 sets up the emulation and runs this');
} else {
  const dir = prebuildDir(repoRoot, 'linux', 'arm64');
  // The emulated processes load prebuilds only (a build/Release here is x64).
  const env: NodeJS.ProcessEnv = { ...process.env, PREBUILDS_ONLY: '1' };
  for (const name of ['TSMUXD_NATIVE_DIR', 'TSMUXD_PREBUILD']) delete env[name];

  const work = tempDir(t, 'tsmuxd-arm64-');
  // tap's process-info hook puts its loader into every child's NODE_OPTIONS
  // (whatever env is given); in an emulated node its loader thread makes the
  // phone's start take minutes instead of seconds. Each emulated process
  // starts through this, which drops it.
  const node = join(work, 'arm64-node');
  writeFileSync(node, `#!/bin/sh\nunset NODE_OPTIONS\nexec '${arm64Node.replaceAll("'", "'\\''")}' "$@"\n`, { mode: 0o755 });
  const cable = join(work, 'cable');
  const socketPath = join(work, 'usbmuxd.sock');
  const daemonArgs = ['-f', '-p', '--no-usb', '--cable', cable, '-S', socketPath, '-P', join(work, 'pid'), '-C', join(work, 'lockdown')];
  // All three start at once: the emulated starts overlap.
  const daemon = spawnDaemon(t, daemonArgs, env, [], node);
  const sim = startDeviceProcess(t, cable, ['--state-dir', join(work, 'sim')], node, env).then(() => elapsed());
  const version = run(node, [MAIN_JS, 'version'], { env, timeoutMs: EMULATED_MS });
  const testingKeys = run(
    node,
    ['-e', 'process.stdout.write(JSON.stringify({ arch: process.arch, keys: Object.keys(require(process.argv[1])) }))', join(dir, 'tsmuxd_testing.napi.node')],
    { env, timeoutMs: EMULATED_MS },
  );

  // (tap ends a file's root test once its queued subtests are done: every
  // wait comes before the first of them.)
  const address = await daemon.ready(EMULATED_MS);
  const daemonReady = elapsed();
  const simReady = await sim;
  const [, deviceId, udid] = await daemon.stderr.waitFor(/device (\d+) attached: (\S+)/, EMULATED_MS, daemon.exited);
  t.comment('no binfmt_misc handler is registered: the daemon runs without --sim, the phone as its own emulated process');
  t.comment(`emulated: daemon listening at ${daemonReady}, phone ready at ${simReady}, attached at ${elapsed()}`);
  const client = new UsbmuxClient({ address });

  t.test('the arm64 addon loads: tsmuxd version names prebuilds/linux-arm64 and its source hash', async (t) => {
    const r = await version;
    t.comment(`emulated tsmuxd version (${r.ms} ms):\n${r.stdout}${r.stderr}`);
    t.equal(r.code, 0, 'exit 0');
    const recorded = readFileSync(join(dir, 'native-sources.sha256'), 'utf8').trim();
    const lines = r.stdout.split('\n');
    t.match(lines[0], /^tsmuxd \d+\.\d+\.\d+ \(node v\d+\.\d+\.\d+, libusb 1\.0\.26 static\)$/, 'the static libusb answers');
    t.equal(lines[1], `addon: ${join(dir, 'tsmuxd.napi.node')}`, 'node-gyp-build took the arm64 prebuild');
    t.equal(lines[2], `native sources: sha256 ${recorded} (the prebuild's native-sources.sha256)`, 'with the hash recorded beside it');
    t.equal(recorded, computeNativeHash(), 'which is that of the native sources here');
  });

  t.test('the arm64 testing addon loads beside it', async (t) => {
    const r = await testingKeys;
    t.equal(r.code, 0, `exit 0 ${r.stderr}`);
    t.same(JSON.parse(r.stdout), { arch: 'arm64', keys: ['setErrorClass', 'wire', 'RawBulkDevice', 'lifetimeProbes'] });
  });


  t.test("Debian's x64 idevice_id lists the emulated phone through the emulated daemon", { skip: requireTool('idevice_id', 'libimobiledevice-utils') }, async (t) => {
    const env = { ...process.env, USBMUXD_SOCKET_ADDRESS: address };
    const r = await run(findOnPath('idevice_id')!, ['-l'], { env, timeoutMs: 30_000 });
    t.comment(`USBMUXD_SOCKET_ADDRESS=${address} idevice_id -l: exit ${r.code} in ${r.ms} ms, stdout ${JSON.stringify(r.stdout)}`);
    t.equal(r.code, 0, 'exit 0');
    t.equal(r.stdout, `${udid}\n`, "the phone's UDID, nothing else");
  });

  t.test(`${TRANSFER / MiB} MiB each way through the emulated mux core and the cable, hashed at both ends`, async (t) => {
    const up = await uploadVerified(await client.connect(Number(deviceId), SINK_PORT), TRANSFER, 1);
    t.equal(up.remote, up.local, "the phone's sink hashed what this end sent");
    const down = await downloadVerified(await client.connect(Number(deviceId), SOURCE_PORT), TRANSFER);
    t.equal(down.bytes, TRANSFER, 'every byte arrived');
    t.equal(down.local, down.remote, "this end hashed what the phone's source sent");
    const rate = (r: { ms: number }) => `${(TRANSFER / MiB / (r.ms / 1000)).toFixed(1)} MiB/s`;
    t.comment(`emulated: to the sink ${Math.round(up.ms)} ms (${rate(up)}), from the source ${Math.round(down.ms)} ms (${rate(down)})`);
  });

  t.test('the emulated daemon still lists the phone and stops cleanly', async (t) => {
    const list = await waitUntil(async () => (await client.listDevices()).map((d) => d.serialNumber), 10_000, 'ListDevices');
    t.same(list, [udid], 'ListDevices: the one phone');
    t.same(await daemon.stop(30_000), { code: 0, signal: null }, 'SIGTERM: exit 0');
    t.notMatch(daemon.stderr.text, /\[(error|fatal)\]/, 'no error was logged');
    t.comment(`emulated subset done at ${elapsed()}`);
  });
}
