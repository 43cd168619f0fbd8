// Bytes through the CoreDeviceProxy tunnel, end to end: tsmuxd as a child
// process and its supervised `--sim` phone, the phone's sink (9) and source
// (19) inside the tunnel (native on both sides), every byte covered by a
// SHA-256 taken at both ends. 64 MiB each way through one stream, through 8
// streams at once, through the tunnel's go-ios-style preamble listener, and
// through `tsmuxd forward --tunnel`. The rates go out as tap comments.
// Volumes shrink under ASan (TSMUXD_SANITIZED).
import { once } from 'node:events';
import net from 'node:net';

import t, { type Test } from 'tap';

import { downloadVerified, uploadVerified, type VerifiedResult } from '../src/bench/verified.js';
import { SINK_PORT, SOURCE_PORT } from '../src/protocol/sim-ports.js';
import { encodeTunnelPreamble } from '../src/protocol/tunnel-preamble.js';
import { assertBuilt, freePort, spawnDaemon } from './helpers/daemon-process.js';
import { scaledForSanitizers } from './helpers/sanitizers.js';
import { mbPerSecond, MiB, startTunnelWorld, tunnelClient } from './helpers/tunnel-fixture.js';

assertBuilt();

const ONE_STREAM = scaledForSanitizers(64 * MiB, 16);
const EACH_OF_EIGHT = scaledForSanitizers(8 * MiB, 16);
const EACH_BOTH_WAYS = scaledForSanitizers(64 * MiB, 16);

const world = await startTunnelWorld(t, { sims: 1 });
const phone = world.phones[0]!;
const client = tunnelClient(world.socketPath);
const tunnel = await client.startTunnel(phone.udid);

function intact(t: Test, r: VerifiedResult, what: string): void {
  t.equal(r.local, r.remote, `${what}: SHA-256 equal at both ends`);
  t.comment(`${what}: ${(r.bytes / MiB).toFixed(0)} MiB at ${mbPerSecond(r.bytes, r.ms)}`);
}

t.test('64 MiB each way through one tunnel stream', async (t) => {
  const up = await client.tunnelConnect(phone.udid, SINK_PORT);
  intact(t, await uploadVerified(up, ONE_STREAM, 1), 'to the sink');
  up.destroy();
  const down = await client.tunnelConnect(phone.udid, SOURCE_PORT);
  intact(t, await downloadVerified(down, ONE_STREAM), 'from the source');
  down.destroy();
});

t.test('8 streams at once, each way', async (t) => {
  for (const direction of ['up', 'down'] as const) {
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const s = await client.tunnelConnect(phone.udid, direction === 'up' ? SINK_PORT : SOURCE_PORT);
        try {
          return direction === 'up' ? await uploadVerified(s, EACH_OF_EIGHT, i + 1) : await downloadVerified(s, EACH_OF_EIGHT);
        } finally {
          s.destroy();
        }
      }),
    );
    t.ok(results.every((r) => r.local === r.remote), `${direction}: all 8 digests equal at both ends`);
    t.comment(`8 streams ${direction}: ${(8 * EACH_OF_EIGHT) / MiB} MiB at ${mbPerSecond(8 * EACH_OF_EIGHT, performance.now() - started)}`);
  }
});

// Both directions at once keep both ends' send queues busy: this stalled
// the tunnel for good when queued ciphertext did not ask the mux connection
// to wake it (a pure ACK that opens the window calls nobody else).
t.test('8 streams both ways at once (4 up, 4 down)', async (t) => {
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      const up = i % 2 === 0;
      const s = await client.tunnelConnect(phone.udid, up ? SINK_PORT : SOURCE_PORT);
      try {
        return up ? await uploadVerified(s, EACH_BOTH_WAYS, i + 1) : await downloadVerified(s, EACH_BOTH_WAYS);
      } finally {
        s.destroy();
      }
    }),
  );
  t.ok(results.every((r) => r.local === r.remote && r.bytes === EACH_BOTH_WAYS), 'all 8 digests equal at both ends');
  t.comment(`8 streams both ways: ${(8 * EACH_BOTH_WAYS) / MiB} MiB at ${mbPerSecond(8 * EACH_BOTH_WAYS, performance.now() - started)}`);
});

t.test("the preamble listener: 16 bytes of IPv6, a u32 LE port, then the stream", async (t) => {
  const open = async (port: number) => {
    const s = net.connect(tunnel.preamblePort, tunnel.preambleHost);
    await once(s, 'connect');
    s.write(encodeTunnelPreamble(tunnel.serverAddress, port));
    return s;
  };
  const up = await open(SINK_PORT);
  intact(t, await uploadVerified(up, ONE_STREAM, 1), 'preamble, to the sink');
  up.destroy();
  const down = await open(SOURCE_PORT);
  intact(t, await downloadVerified(down, ONE_STREAM), 'preamble, from the source');
  down.destroy();
  const refused = await open(1);
  const [closedWith] = await Promise.race([
    once(refused, 'close').then(() => ['closed']),
    new Promise<string[]>((resolve) => setTimeout(() => resolve(['still open']), 10_000)),
  ]);
  t.equal(closedWith, 'closed', 'a closed port inside the tunnel closes the local connection');
});

t.test('forward --tunnel: each local client is a TunnelConnect', async (t) => {
  const [sinkLocal, sourceLocal] = [await freePort(), await freePort()];
  const forward = spawnDaemon(t, [
    'forward', '--json', '-S', world.socketPath, '--tunnel', phone.udid, `${sinkLocal}:${SINK_PORT}`, `${sourceLocal}:${SOURCE_PORT}`,
  ]);
  await forward.stdout.waitFor(/(?:"event":"listening"[^\n]*\n[^]*){2}/, 20_000, forward.exited);
  const connectLocal = async (port: number) => {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    return s;
  };
  const up = await connectLocal(sinkLocal);
  intact(t, await uploadVerified(up, ONE_STREAM, 1), 'forward --tunnel, to the sink');
  up.destroy();
  const down = await connectLocal(sourceLocal);
  intact(t, await downloadVerified(down, ONE_STREAM), 'forward --tunnel, from the source');
  down.destroy();
  await forward.stop();
  t.equal(forward.stderr.text, '', 'forward printed no error');
});
