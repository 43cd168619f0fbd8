// The tunnel against phones as strict as real ones, each in a process of its
// own on tsmuxd's cable: one that drops 1 % of the tunnel's packets, one that
// drops packets over 1500 bytes under load (the host's 1340-byte send MSS
// keeps under it; an 8000-byte one gets through only by retransmission), and one unplugged in the middle of a transfer (the local
// clients get EOF or a reset, the daemon lives on, the tunnel and its
// preamble listener are gone, and the phone gets a new tunnel once it is
// back). Bytes are checked with SHA-256 at both ends; rates are tap comments.
import { once } from 'node:events';
import net from 'node:net';

import t, { type Test } from 'tap';

import { downloadVerified, lengthHeader, uploadVerified } from '../src/bench/verified.js';
import { SINK_PORT, SOURCE_PORT } from '../src/protocol/sim-ports.js';
import { assertBuilt, waitUntil } from './helpers/daemon-process.js';
import { scaledForSanitizers } from './helpers/sanitizers.js';
import { mbPerSecond, MiB, startTunnelWorld, tunnelClient } from './helpers/tunnel-fixture.js';
import { within } from './helpers/usbmuxd-harness.js';

assertBuilt();

const world = await startTunnelWorld(t, {
  sims: 0,
  standalone: {
    lossy: ['--tunnel-loss-rate', '0.01'],
    oversize: ['--tunnel-drop-oversize', '1500'],
    victim: [],
  },
});
const client = tunnelClient(world.socketPath);
const { lossy, oversize, victim } = world.standalone as Record<'lossy' | 'oversize' | 'victim', (typeof world.standalone)[string]>;

async function both(t: Test, udid: string, upBytes: number, downBytes: number, what: string): Promise<void> {
  await client.startTunnel(udid);
  const up = await client.tunnelConnect(udid, SINK_PORT);
  const u = await uploadVerified(up, upBytes, 1);
  up.destroy();
  t.equal(u.local, u.remote, `${what}, to the sink: intact`);
  t.comment(`${what}, to the sink: ${(upBytes / MiB).toFixed(0)} MiB at ${mbPerSecond(upBytes, u.ms)}`);
  const down = await client.tunnelConnect(udid, SOURCE_PORT);
  const d = await downloadVerified(down, downBytes);
  down.destroy();
  t.equal(d.local, d.remote, `${what}, from the source: intact`);
  t.comment(`${what}, from the source: ${(downBytes / MiB).toFixed(0)} MiB at ${mbPerSecond(downBytes, d.ms)}`);
}

t.test('1 % packet loss: intact, and what it costs', async (t) => {
  // lwIP's Reno recovers a second loss in a window only by timeout; with
  // the fine timer and a 200 ms first RTO (docs/tunnel.md) that costs
  // milliseconds, not seconds.
  await both(t, lossy.udid, scaledForSanitizers(16 * MiB, 8), scaledForSanitizers(16 * MiB, 8), '1 % loss');
});

t.test('packets over 1500 bytes dropped under load: the 1340-byte send MSS stays under', async (t) => {
  await both(t, oversize.udid, scaledForSanitizers(16 * MiB, 8), scaledForSanitizers(16 * MiB, 8), 'oversize drops');
});

t.test('the same phone with an 8000-byte send MSS: still intact, only by retransmission', async (t) => {
  await client.stopTunnel(oversize.udid);
  const big = await client.startTunnel(oversize.udid, { sendMss: 8000 });
  t.equal(big.sendMss, 8000, 'SendMSS 8000 asked and granted (under the MTU less 60)');
  const bytes = scaledForSanitizers(256 * 1024, 4);
  const up = await client.tunnelConnect(oversize.udid, SINK_PORT);
  const u = await uploadVerified(up, bytes, 1);
  up.destroy();
  t.equal(u.local, u.remote, 'intact');
  t.comment(`send MSS 8000 against drops over 1500: ${(bytes / 1024).toFixed(0)} KiB to the sink at ${mbPerSecond(bytes, u.ms)}`);
  await client.stopTunnel(oversize.udid);
});

t.test('unplugged mid-transfer: EOF or reset locally, the daemon lives, the tunnel is gone', async (t) => {
  const tunnel = await client.startTunnel(victim.udid);
  const down = await client.tunnelConnect(victim.udid, SOURCE_PORT);
  const up = await client.tunnelConnect(victim.udid, SINK_PORT);
  const errors: string[] = [];
  const ends = [down, up].map((s, i) => {
    s.on('error', (err: NodeJS.ErrnoException) => errors.push(`${i ? 'up' : 'down'}: ${err.code ?? err.message}`));
    return new Promise<void>((resolve) => s.once('close', () => resolve()));
  });
  // Far more than will arrive; the top bit asks for unhashed bytes.
  down.write(lengthHeader(Number((1n << 63n) | BigInt(1 << 30))));
  up.write(lengthHeader(1 << 30));
  const chunk = Buffer.alloc(256 * 1024, 7);
  const pump = () => {
    while (!up.destroyed && up.write(chunk));
  };
  up.on('drain', pump);
  pump();
  let received = 0;
  await within(
    new Promise<void>((resolve) => {
      down.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= 4 * MiB) resolve();
      });
    }),
    20_000,
    '4 MiB from the source',
  ).catch((err: Error) => {
    throw new Error(`${err.message}; after ${received} bytes, errors: ${errors.join(', ')}\n${world.daemon.stderr.text.slice(-3000)}`);
  });
  victim.command('unplug');
  await within(Promise.all(ends), 15_000, 'both local connections to end');
  t.pass(`both local clients ended (EOF or reset) after ${(received / MiB).toFixed(1)} MiB ${errors.length ? `(${errors.join(', ')})` : '(EOF)'}`);
  await world.daemon.stderr.waitFor(new RegExp(`tunnel to ${victim.udid} closed`), 10_000);
  t.notOk((await client.listTunnels()).some((x) => x.udid === victim.udid), 'gone from tunnel ls');
  const preamble = net.connect(tunnel.preamblePort, tunnel.preambleHost);
  const outcome = await Promise.race([
    once(preamble, 'error').then(([e]) => (e as NodeJS.ErrnoException).code),
    once(preamble, 'connect').then(() => 'connected'),
  ]);
  preamble.destroy();
  t.equal(outcome, 'ECONNREFUSED', 'its preamble listener is closed');
  t.ok((await client.listDevices()).some((d) => d.serialNumber === lossy.udid), 'the daemon still answers, the other phones listed');

  victim.command('plug');
  await waitUntil(async () => (await client.listDevices()).some((d) => d.serialNumber === victim.udid), 20_000, 'the phone back');
  const again = await client.startTunnel(victim.udid);
  t.not(again.serverAddress, tunnel.serverAddress, 'back on the cable, it gets a new tunnel');
  const echo = await client.tunnelConnect(victim.udid, SINK_PORT);
  const r = await uploadVerified(echo, MiB, 1);
  echo.destroy();
  t.equal(r.local, r.remote, 'which carries bytes');
});
