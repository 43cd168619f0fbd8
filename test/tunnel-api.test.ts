// The tunneld and go-ios APIs (docs/tunnel.md, "The tunneld and go-ios
// APIs") against tsmuxd as a child process with a supervised --sim phone:
// the listings and their fields, starting and stopping tunnels over HTTP,
// the /connect websocket moving 64 MiB each way intact (SHA-256 at both
// ends) and staying small when its client stops reading, and the guards:
// a foreign Host or any Origin refused, malformed and oversized requests
// refused without touching the next one, the connection caps. Then a taken
// port (one warning, the daemon goes on), a non-loopback address (refused),
// and an in-process Daemon's apiAddresses() and stop().
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';

import t from 'tap';

import { rssBytes } from '../src/bench/proc.js';
import { wsDownloadVerified, wsUploadVerified } from '../src/bench/ws-verified.js';
import { Daemon } from '../src/daemon/daemon.js';
import { ECHO_PORT, SINK_PORT, SOURCE_PORT } from '../src/protocol/sim-ports.js';
import { UNHASHED } from '../src/protocol/measuring.js';
import { MAX_CONNECTIONS, MAX_HEADER_BYTES, MAX_REQUESTS_PER_CONNECTION } from '../src/tunnel-api/http-guard.js';
import { MAX_BRIDGES, MAX_QUEUED_TO_CLIENT_BYTES, PAUSE_DEVICE_AT_BYTES } from '../src/tunnel-api/tunneld-connect.js';
import { silentLogger } from '../src/util/log.js';
import { assertBuilt, runCli, spawnDaemon, tempDir, waitUntil } from './helpers/daemon-process.js';
import { rssBounded, scaledForSanitizers } from './helpers/sanitizers.js';
import { closeOf, getJson, hostPort, openedWebSocket, openWebSocket, rawExchange, request } from './helpers/tunnel-api-client.js';
import { mbPerSecond, MiB, startTunnelWorld, tunnelClient } from './helpers/tunnel-fixture.js';

assertBuilt();

const TRANSFER = scaledForSanitizers(64 * MiB, 16);
/** What the phone offers a client that reads nothing: far more than any buffer on the way. */
const OFFERED = 256 * MiB;
const STALL_MS = 5_000;
/**
 * The daemon's growth while its websocket client reads nothing. What it may
 * hold: PAUSE_DEVICE_AT_BYTES (1 MiB) queued toward the client and one
 * socket read, the native stream's receive window (lwIP's TCP_WND, 4 MiB)
 * and a mux window (256 KiB); the kernel's socket buffers are not in its
 * RSS. 24 MiB is four times that, for the collector's own slack; without
 * the pause the phone's 256 MiB would pile up in JS.
 */
const RSS_GROWTH_BOUND = 24 * MiB;

const world = await startTunnelWorld(t, {
  sims: 1,
  // Userspace tunnels (the websocket bridge's case), even as root: kernel interfaces have tunnel-tun.test.ts.
  daemonArgs: ['--tun', 'off', '--tunneld-api', '127.0.0.1:0', '--go-ios-api', '127.0.0.1:0'],
});
const phone = world.phones[0]!;
const udid = phone.udid;
const client = tunnelClient(world.socketPath);
const tunneld = (await world.daemon.stderr.waitFor(/tunneld API on http:\/\/(\S+)/, 10_000))[1]!;
const goIos = (await world.daemon.stderr.waitFor(/agent API on http:\/\/(\S+)/, 10_000))[1]!;
const connectUrl = (query: string) => `ws://${tunneld}/connect?${query}`;

t.test('before any tunnel', async (t) => {
  t.same(await getJson(tunneld, '/'), { status: 200, json: {} }, 'tunneld: GET / lists nothing');
  t.same(await getJson(tunneld, '/hello'), { status: 200, json: { message: "Hello, I'm alive" } }, 'tunneld: /hello');
  t.equal((await request(goIos, '/health')).status, 200, 'go-ios: /health');
  t.equal((await request(goIos, '/ready')).status, 200, 'go-ios: /ready');
  t.same(await getJson(goIos, '/tunnels'), { status: 200, json: [] }, 'go-ios: /tunnels is []');
  const missing = await request(goIos, `/tunnel/${udid}`);
  t.same([missing.status, missing.body], [404, 'tunnel not found\n'], "go-ios: /tunnel/UDID is 404 with go-ios's text");
  const gone = await openedWebSocket(connectUrl(`udid=${udid}`));
  t.equal((await closeOf(gone)).code, 4404, '/connect to a phone without a tunnel closes 4404');
});

t.test('/start-tunnel, then both listings', async (t) => {
  const started = await getJson(tunneld, `/start-tunnel?udid=${udid}`);
  t.equal(started.status, 200, '/start-tunnel answers 200');
  const [tunnel] = await client.listTunnels();
  t.ok(tunnel, 'the daemon has the tunnel (usbmuxd TunnelList)');
  t.same(started.json, { interface: 'tsmuxd-userspace', port: tunnel!.serverRsdPort, address: tunnel!.serverAddress }, 'interface, RSD port and the phone address');
  t.same(await getJson(tunneld, `/start-tunnel?udid=${udid}`), started, 'again: the same tunnel');
  const listing = [{ 'tunnel-address': tunnel!.serverAddress, 'tunnel-port': tunnel!.serverRsdPort, interface: 'tsmuxd-userspace' }];
  t.same(await getJson(tunneld, '/'), { status: 200, json: { [udid]: listing } }, 'tunneld: GET / lists it');
  const goTunnel = { address: tunnel!.serverAddress, rsdPort: tunnel!.serverRsdPort, udid, userspaceTun: true, userspaceTunPort: tunnel!.preamblePort };
  t.same(await getJson(goIos, '/tunnels'), { status: 200, json: [goTunnel] }, 'go-ios: /tunnels');
  t.same(await getJson(goIos, `/tunnel/${udid}`), { status: 200, json: goTunnel }, 'go-ios: /tunnel/UDID');
  t.same((await getJson(goIos, `/tunnel/${udid.replace('-', '')}`)).json, goTunnel, 'the UDID without its dash names the same phone');
  t.equal((await request(goIos, `/tunnel/${udid}`)).body.endsWith('}\n'), true, "go-ios's JSON ends in a newline, as json.Encoder's");
  const unknown = await getJson(tunneld, '/start-tunnel?udid=00000000-0000000000000000');
  t.equal(unknown.status, 501, '/start-tunnel of an unknown UDID: 501 (task not created)');
  t.equal((await getJson(tunneld, '/start-tunnel')).status, 422, 'without udid: 422');
  t.equal((await getJson(tunneld, '/start-tunnel?udid=a%20b')).status, 422, 'a udid with a space: 422');
  t.equal((await getJson(tunneld, `/start-tunnel?udid=${'A'.repeat(65)}`)).status, 422, 'a 65-character udid: 422');
  t.equal((await getJson(tunneld, `/start-tunnel?udid=${udid}&udid=${udid}`)).status, 422, 'udid twice: 422');
  t.equal((await request(goIos, '/tunnel/a!b')).status, 400, 'go-ios: a malformed UDID in the path: 400');
  t.equal((await getJson(tunneld, '/shutdown')).status, 403, 'tunneld /shutdown does not stop the daemon');
  t.equal((await request(goIos, '/shutdown')).status, 403, 'nor does go-ios /shutdown');
  t.equal((await request(goIos, '/tunnels', { method: 'POST' })).status, 405, 'go-ios: POST /tunnels is 405');
  t.equal((await getJson(tunneld, '/nothing')).status, 404, 'tunneld: an unknown route is 404');
});

t.test('/connect: 64 MiB each way through the websocket, hashed at both ends', async (t) => {
  const echo = await openedWebSocket(connectUrl(`udid=${udid}&port=${ECHO_PORT}`));
  echo.send(Buffer.from('ping through the bridge'));
  const [back] = (await once(echo, 'message')) as [Buffer];
  t.equal(back.toString(), 'ping through the bridge', 'echo answers through the bridge');
  echo.close();
  const up = await openedWebSocket(connectUrl(`udid=${udid}&port=${SINK_PORT}`));
  const sent = await wsUploadVerified(up, TRANSFER, 1);
  t.equal(sent.local, sent.remote, 'to the sink: SHA-256 equal at both ends');
  t.comment(`/connect to the sink: ${TRANSFER / MiB} MiB at ${mbPerSecond(sent.bytes, sent.ms)}`);
  up.close();
  const down = await openedWebSocket(connectUrl(`udid=${udid}&port=${SOURCE_PORT}`));
  const got = await wsDownloadVerified(down, TRANSFER);
  t.equal(got.local, got.remote, 'from the source: SHA-256 equal at both ends');
  t.comment(`/connect from the source: ${TRANSFER / MiB} MiB at ${mbPerSecond(got.bytes, got.ms)}`);
  down.close();
});

t.test('/connect: close codes and refusals', async (t) => {
  const closedPort = await openedWebSocket(connectUrl(`udid=${udid}&port=1`));
  t.equal((await closeOf(closedPort)).code, 4502, 'a port the phone refuses: 4502');
  const text = await openedWebSocket(connectUrl(`udid=${udid}&port=${ECHO_PORT}`));
  text.send('text, not binary');
  t.equal((await closeOf(text)).code, 1003, 'a text message: 1003');
  for (const query of ['port=7', `udid=${udid}&port=0`, `udid=${udid}&port=70000`, `udid=${udid}&port=7x`, 'udid=%00']) {
    const o = await openWebSocket(connectUrl(query));
    t.same(o.kind === 'refused' && o.status, 400, `?${query}: 400 before the upgrade`);
  }
  const bridges = await Promise.all(Array.from({ length: MAX_BRIDGES }, () => openedWebSocket(connectUrl(`udid=${udid}&port=${ECHO_PORT}`))));
  t.equal(bridges.length, MAX_BRIDGES, `${MAX_BRIDGES} bridges open at once`);
  const over = await openWebSocket(connectUrl(`udid=${udid}&port=${ECHO_PORT}`));
  t.same(over.kind === 'refused' && over.status, 503, 'one more: 503');
  await Promise.all(bridges.map((b) => {
    const closed = closeOf(b);
    b.close();
    return closed;
  }));
  const again = await waitUntil(async () => {
    const o = await openWebSocket(connectUrl(`udid=${udid}&port=${ECHO_PORT}`));
    return o.kind === 'open' && o.ws;
  }, 10_000, 'a bridge once they are closed');
  again.close();
  t.pass('once they are closed, a bridge opens again');
  const elsewhere = await openWebSocket(`ws://${tunneld}/hello`);
  t.same(elsewhere.kind === 'refused' && elsewhere.status, 404, 'an upgrade to another route: 404');
  t.equal((await request(tunneld, `/connect?udid=${udid}`)).status, 426, 'a plain GET /connect: 426');
});

t.test('a websocket client that stops reading costs the daemon bounded memory', async (t) => {
  const ws = await openedWebSocket(connectUrl(`udid=${udid}&port=${SOURCE_PORT}`));
  let received = 0;
  ws.on('message', (d: Buffer) => (received += d.length));
  ws.pause();
  const request = Buffer.alloc(8);
  request.writeBigUInt64BE(BigInt(OFFERED) | UNHASHED);
  ws.send(request);
  const pid = world.daemon.pid;
  const before = rssBytes(pid);
  let peak = before;
  for (const end = Date.now() + STALL_MS; Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 100));
    peak = Math.max(peak, rssBytes(pid));
  }
  t.equal(received, 0, 'the paused client took nothing');
  const growth = peak - before;
  t.comment(`daemon RSS ${(before / MiB).toFixed(1)} MiB before, ${(peak / MiB).toFixed(1)} MiB peak over ${STALL_MS / 1000} s with ${OFFERED / MiB} MiB offered and none read (growth ${(growth / MiB).toFixed(1)} MiB; the bridge pauses at ${PAUSE_DEVICE_AT_BYTES / MiB} MiB)`);
  rssBounded(t, growth < RSS_GROWTH_BOUND, `growth under ${RSS_GROWTH_BOUND / MiB} MiB`);
  const started = performance.now();
  ws.resume();
  await waitUntil(() => received >= OFFERED + 32, 120_000, 'the rest of the stream');
  t.equal(received, OFFERED + 32, 'resumed, every byte and the trailer arrive');
  t.comment(`then ${OFFERED / MiB} MiB drained at ${mbPerSecond(OFFERED, performance.now() - started)}`);
  ws.close();
});

t.test('a websocket client that pings and never reads the pongs is cut', async (t) => {
  const ws = await openedWebSocket(connectUrl(`udid=${udid}&port=${ECHO_PORT}`));
  ws.pause();
  const closed = closeOf(ws);
  const pid = world.daemon.pid;
  const before = rssBytes(pid);
  const payload = Buffer.alloc(125);
  // 300,000 pings: 38 MB of pongs, past MAX_QUEUED_TO_CLIENT_BYTES and the kernel's buffers both.
  for (let i = 0; i < 300_000; i++) {
    ws.ping(payload);
    if (i % 10_000 === 0) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const growth = rssBytes(pid) - before;
  ws.resume();
  const { code } = await closed;
  t.equal(code, 1006, 'the daemon ended the connection (no close frame: 1006)');
  t.comment(`daemon RSS grew ${(growth / MiB).toFixed(1)} MiB while pongs piled up (cut at ${MAX_QUEUED_TO_CLIENT_BYTES / MiB} MiB)`);
  rssBounded(t, growth < RSS_GROWTH_BOUND, `growth under ${RSS_GROWTH_BOUND / MiB} MiB`);
});

t.test('Host and Origin: refused with 403, on both APIs and on the upgrade', async (t) => {
  const port = hostPort(tunneld).port;
  t.equal((await request(tunneld, '/', { headers: { host: `localhost:${port}` } })).status, 200, 'Host localhost:PORT is ours');
  for (const [at, path] of [[tunneld, '/'], [goIos, '/tunnels']] as const) {
    t.equal((await request(at, path, { headers: { host: 'attacker.example' } })).status, 403, `${path}: a foreign Host`);
    t.equal((await request(at, path, { headers: { host: `127.0.0.1:${hostPort(at).port + 1}` } })).status, 403, `${path}: another port in Host`);
    t.equal((await request(at, path, { headers: { origin: 'http://attacker.example' } })).status, 403, `${path}: an Origin`);
    t.equal((await request(at, path, { headers: { origin: `http://${at}` } })).status, 403, `${path}: even our own Origin`);
    t.equal((await request(at, path, { headers: { 'sec-fetch-site': 'cross-site' } })).status, 403, `${path}: Sec-Fetch-Site cross-site`);
  }
  const url = connectUrl(`udid=${udid}&port=${ECHO_PORT}`);
  const foreign = await openWebSocket(url, { host: 'attacker.example' });
  t.same(foreign.kind === 'refused' && foreign.status, 403, 'upgrade with a foreign Host: 403');
  const origin = await openWebSocket(url, { origin: 'http://attacker.example' });
  t.same(origin.kind === 'refused' && origin.status, 403, 'upgrade with an Origin: 403');
});

t.test('malformed and oversized requests: refused, and the next request is answered', async (t) => {
  const next = async (what: string) => t.equal((await request(tunneld, '/hello')).status, 200, `after ${what}, the next request is answered`);
  const garbage = await rawExchange(tunneld, 'NOT HTTP AT ALL\r\n\r\n');
  t.match(garbage.text, /^HTTP\/1\.1 400 /, 'a malformed request: 400');
  t.ok(garbage.closedByServer, 'and its connection closed');
  await next('a malformed request');
  const big = await rawExchange(tunneld, `GET / HTTP/1.1\r\nHost: ${tunneld}\r\nX-Big: ${'a'.repeat(4 * MAX_HEADER_BYTES)}\r\n\r\n`);
  t.match(big.text, /^HTTP\/1\.1 431 /, 'a header over the cap: 431');
  await next('a huge header');
  t.equal((await request(tunneld, `/hello?${'x'.repeat(3000)}`)).status, 414, 'a 3000-character URL: 414');
  const body = await rawExchange(tunneld, `POST /hello HTTP/1.1\r\nHost: ${tunneld}\r\nContent-Length: 5\r\n\r\nhello`);
  t.match(body.text, /^HTTP\/1\.1 413 /, 'a request body: 413');
  const absolute = await rawExchange(tunneld, `GET http://${tunneld}/ HTTP/1.1\r\nHost: ${tunneld}\r\nConnection: close\r\n\r\n`);
  t.match(absolute.text, /^HTTP\/1\.1 400 /, 'an absolute-form target (a proxy request): 400');
  const idle = await rawExchange(goIos, '', 20_000);
  t.ok(idle.closedByServer && /^HTTP\/1\.1 408 /.test(idle.text), `a connection that sends nothing: 408 and closed after ${idle.ms} ms`);
  await next('an idle connection');
});

t.test(`at most ${MAX_REQUESTS_PER_CONNECTION} requests on a connection, ${MAX_CONNECTIONS} connections at once`, async (t) => {
  const one = `GET /hello HTTP/1.1\r\nHost: ${tunneld}\r\n\r\n`;
  const many = await rawExchange(tunneld, one.repeat(MAX_REQUESTS_PER_CONNECTION + 5), 10_000);
  const answered = many.text.match(/HTTP\/1\.1 200 /g)?.length ?? 0;
  t.equal(answered, MAX_REQUESTS_PER_CONNECTION, `${MAX_REQUESTS_PER_CONNECTION} answered 200 on one connection`);
  t.equal(many.text.match(/HTTP\/1\.1 503 /g)?.length, 5, 'the 5 past the cap 503');
  const { host, port } = hostPort(tunneld);
  // One at a time, so the server accepts them in order and the last 8 are the ones over the cap.
  const sockets: net.Socket[] = [];
  let closed = 0;
  for (let i = 0; i < MAX_CONNECTIONS + 8; i++) {
    const s = net.connect(port, host);
    s.on('error', () => {});
    // A dropped connection may end before the loop is done: count it from the start.
    s.on('close', () => closed++);
    s.resume();
    await once(s, 'connect');
    sockets.push(s);
  }
  await waitUntil(() => closed >= 8, 10_000, 'the connections over the cap to be closed', 50).catch(() => undefined);
  t.ok(closed >= 8, `${closed} of ${sockets.length} closed at once`);
  t.ok(sockets.length - closed <= MAX_CONNECTIONS, `${sockets.length - closed} stayed open: no more than ${MAX_CONNECTIONS}`);
  for (const s of sockets) s.destroy();
  // Until the server has seen every close it is still full, and it resets a new connection at once.
  const answered200 = async () => {
    try {
      return (await request(tunneld, '/hello')).status === 200;
    } catch {
      return false;
    }
  };
  await waitUntil(answered200, 10_000, 'a request after the flood');
  t.pass('a request after they are gone is answered');
});

t.test('/cancel, DELETE /tunnel/UDID and /clear_tunnels stop tunnels', async (t) => {
  const cancelled = await getJson(tunneld, `/cancel?udid=${udid}`);
  t.same(cancelled, { status: 200, json: { operation: 'cancel', udid, data: true, message: `tunnel ${udid} Canceled ...` } }, '/cancel answers as tunneld');
  t.same(await client.listTunnels(), [], 'the daemon has no tunnel');
  t.same((await getJson(tunneld, '/')).json, {}, 'GET / lists none');
  t.equal((await getJson(tunneld, `/cancel?udid=${udid}`)).status, 200, '/cancel without a tunnel: 200 too, as tunneld');
  await client.startTunnel(udid);
  const deleted = await request(goIos, `/tunnel/${udid}`, { method: 'DELETE' });
  t.same([deleted.status, deleted.body], [204, ''], 'go-ios DELETE: 204');
  t.equal((await request(goIos, `/tunnel/${udid}`, { method: 'DELETE' })).status, 404, 'again: 404');
  t.same(await client.listTunnels(), [], 'the daemon has no tunnel');
  await client.startTunnel(udid);
  t.same(await getJson(tunneld, '/clear_tunnels'), { status: 200, json: { operation: 'clear_tunnels', data: true, message: 'Cleared tunnels...' } }, '/clear_tunnels');
  t.same(await client.listTunnels(), [], 'the daemon has no tunnel');
});

t.test('a taken port: one warning, and the daemon goes on without that API', async (t) => {
  const holder = net.createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const taken = (holder.address() as net.AddressInfo).port;
  const dir = tempDir(t, 'tsmuxd-api-taken-');
  const socketPath = join(dir, 'sock');
  const d = spawnDaemon(t, ['-f', '--no-usb', '-S', socketPath, '-P', 'NONE', '-C', join(dir, 'lockdown'), '--tunneld-api', `127.0.0.1:${taken}`, '--go-ios-api', '127.0.0.1:0']);
  await d.ready(30_000);
  const goAt = (await d.stderr.waitFor(/agent API on http:\/\/(\S+)/, 10_000))[1]!;
  const warnings = d.stderr.lines().filter((l) => /\[warning\]/.test(l));
  t.equal(warnings.length, 1, 'one warning');
  t.match(warnings[0], new RegExp(`tunneld API cannot listen on 127\\.0\\.0\\.1:${taken}: the port is in use`), 'it names the address and the reason');
  t.equal((await request(goAt, '/health')).status, 200, 'the other API serves');
  t.same(await tunnelClient(socketPath).listDevices(), [], 'the usbmuxd socket serves');
  t.equal(d.exit(), null, 'the daemon runs');
});

t.test('a non-loopback address is refused when the option is read', async (t) => {
  for (const flag of ['--tunneld-api', '--go-ios-api']) {
    const r = await runCli(['-f', '-S', '/nonexistent/sock', '-P', 'NONE', flag, '0.0.0.0:49151']);
    t.not(r.code, 0, `${flag} 0.0.0.0:49151: the daemon does not start`);
    t.match(r.stderr, /not a loopback address/, 'and says why');
  }
});

t.test('in process: apiAddresses(), and stop() closes both APIs', async (t) => {
  const dir = tempDir(t, 'tsmuxd-api-inproc-');
  const daemon = await Daemon.start({
    address: { kind: 'unix', path: join(dir, 'sock') },
    configDir: join(dir, 'lockdown'),
    log: silentLogger,
    tunneldApi: '127.0.0.1:0',
    goIosApi: '[::1]:0',
  });
  t.teardown(() => daemon.stop());
  const at = daemon.apiAddresses();
  t.match(at, { tunneld: /^127\.0\.0\.1:\d+$/, goIos: /^\[::1\]:\d+$/ }, 'both bound, to the ports the kernel chose');
  t.equal((await request(at.tunneld!, '/hello')).status, 200, 'tunneld API serves');
  t.equal((await request(at.goIos!, '/health', { headers: { host: `[::1]:${hostPort(at.goIos!).port}` } })).status, 200, 'go-ios API on ::1 serves, Host [::1]:PORT');
  // A keep-alive connection left open: stop() must not wait for its client.
  const { host, port } = hostPort(at.tunneld!);
  const kept = net.connect(port, host);
  kept.on('error', () => {});
  await once(kept, 'connect');
  kept.write(`GET /hello HTTP/1.1\r\nHost: ${at.tunneld}\r\n\r\n`);
  await once(kept, 'data');
  const keptClosed = once(kept, 'close');
  await daemon.stop();
  await t.rejects(request(at.tunneld!, '/hello'), { code: 'ECONNREFUSED' }, 'after stop(): refused');
  await t.rejects(request(at.goIos!, '/health'), { code: 'ECONNREFUSED' }, 'both');
  kept.resume();
  await keptClosed;
  t.pass('and an open keep-alive connection was closed by stop()');
});
