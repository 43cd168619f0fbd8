// Remote usbmux (docs/remote.md), end to end with real processes: daemons A
// and B, two simulated phones each, serve over mutual TLS on 127.0.0.2 and
// 127.0.0.3; daemon C adds both and lists their four phones as its own.
// Debian's idevice_id, iproxy and ideviceinfo run against C; refused peers
// (no certificate, the wrong CA, an expired one) are checked against A's
// log; B is stopped, killed mid-transfer and started again; usbfluxd's
// instance messages are sent byte for byte as usbfluxctl sends them.
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, readdirSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';

import { UsbmuxClient, type UsbmuxEvent } from '../src/client/index.js';
import { parsePlist, type PlistDict } from '../src/protocol/plist-codec.js';
import { plistMessage } from '../src/protocol/plist-message.js';
import { decodeHeader } from '../src/protocol/usbmux.js';
import {
  connectWithRetry,
  findOnPath,
  freePort,
  killOnExit,
  run,
  runCli,
  spawnDaemon,
  tempDir,
  waitUntil,
  type DaemonProcess,
} from './helpers/daemon-process.js';
import { makeRemoteCerts, type Identity, type RemoteCerts } from '../bench/remote/certs.js';
import { requireTool } from './helpers/system-tools.js';
import { echo } from './helpers/windowed-echo.js';

const MiB = 1024 * 1024;
const ECHO = 7;
const KEEPALIVE_MS = 1000;

const skip = requireTool('openssl', 'openssl');

interface Served {
  daemon: DaemonProcess;
  socket: string;
  host: string;
  port: number;
  udids: string[];
}

function tlsArgs(certs: RemoteCerts, who: Identity): string[] {
  return ['--remote-cert', who.cert, '--remote-key', who.key, '--remote-ca', certs.ca];
}

/** A daemon with two sims serving remotely on `host` (port 0: the log says which). */
async function serving(tt: Parameters<typeof spawnDaemon>[0], dir: string, name: string, host: string, extra: string[], port = 0): Promise<Served> {
  const socket = join(dir, `${name}.sock`);
  const daemon = spawnDaemon(tt, ['-f', '--no-usb', '--sim', '2', '--sim-state', join(dir, `${name}-sims`), '-S', socket, '-P', 'NONE', '-C', join(dir, `${name}-cfg`),
    '--remote-listen', `${host}:${port}`, ...extra]);
  await daemon.ready(30_000);
  const m = await daemon.stderr.waitFor(new RegExp(`remote usbmux on ${host.replace(/\./g, '\\.')}:(\\d+)`), 15_000, daemon.exited);
  const client = new UsbmuxClient({ address: `UNIX:${socket}` });
  await waitUntil(async () => (await client.listDevices()).length === 2, 30_000, `${name}'s two phones listed`);
  const udids = (await client.listDevices()).map((d) => d.serialNumber).sort();
  return { daemon, socket, host, port: Number(m[1]), udids };
}

/** A usbmuxd request as usbfluxctl sends it (tools/usbfluxctl.c): header version 1, message 8, tag 0, bare XML. */
function usbfluxctlQuery(socketPath: string, xml: string): Promise<{ version: number; message: number; tag: number; dict: PlistDict }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    const header = Buffer.alloc(16);
    header.writeUInt32LE(16 + Buffer.byteLength(xml), 0);
    header.writeUInt32LE(1, 4);
    header.writeUInt32LE(8, 8);
    header.writeUInt32LE(0, 12);
    let got = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 16 && got.length >= got.readUInt32LE(0)) {
        const h = decodeHeader(got);
        s.destroy();
        resolve({ version: h.version, message: h.message, tag: h.tag, dict: parsePlist(got.subarray(16, h.length)) as PlistDict });
      }
    });
    s.on('error', reject);
    s.write(Buffer.concat([header, Buffer.from(xml)]));
  });
}

const addXml = (host: string, port: number, type = 'AddInstance') =>
  `<plist version="1.0"><dict><key>MessageType</key><string>${type}</string><key>HostAddress</key><string>${host}</string><key>PortNumber</key><integer>${port}</integer></dict></plist>`;

/** A TLS client straight to a listener: the error it ends with, if any, and whether any usbmuxd byte came back. */
async function tlsProbe(port: number, host: string, ca: string, who?: Identity): Promise<{ error: string; answered: boolean }> {
  const s = tls.connect({
    host,
    port,
    ca: readFileSync(ca),
    ...(who ? { cert: readFileSync(who.cert), key: readFileSync(who.key) } : {}),
    minVersion: 'TLSv1.3',
    checkServerIdentity: () => undefined,
  });
  let error = '';
  let answered = false;
  s.on('error', (e) => (error ||= e.message));
  s.on('data', () => (answered = true));
  s.once('secureConnect', () => s.write(Buffer.from('ListDevices is never read')));
  await new Promise((r) => s.once('close', r));
  return { error, answered };
}

/** `node -e SCRIPT` as another user; its stdout. */
function asUser(uid: number, [script]: string[]): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script!], { uid, gid: uid, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.once('error', reject);
    child.once('close', () => resolve({ stdout }));
  });
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

t.test('remote usbmux: two hosts merged into a third, over mutual TLS', { skip }, async (t) => {
  // Daemons a subtest starts for the ones after it live as long as this test.
  const top = t;
  const dir = tempDir(t, 'tsmuxd-remote-');
  const certs = await makeRemoteCerts(dir, ['host-a', 'host-b', 'host-c']);
  const [a, b] = await Promise.all([
    serving(t, dir, 'a', '127.0.0.2', tlsArgs(certs, certs.hosts['host-a']!)),
    serving(t, dir, 'b', '127.0.0.3', tlsArgs(certs, certs.hosts['host-b']!)),
  ]);
  const cSocket = join(dir, 'c.sock');
  const c = spawnDaemon(t, ['-f', '--no-usb', '-S', cSocket, '-P', 'NONE', '-C', join(dir, 'c-cfg'), '--remote-keepalive-ms', String(KEEPALIVE_MS), ...tlsArgs(certs, certs.hosts['host-c']!)]);
  await c.ready();
  const env = { ...process.env, USBMUXD_SOCKET_ADDRESS: `UNIX:${cSocket}` };
  const cClient = new UsbmuxClient({ address: `UNIX:${cSocket}` });

  for (const s of [a, b]) {
    const r = await runCli(['remote', 'add', `${s.host}:${s.port}`, '-S', cSocket]);
    t.equal(r.code, 0, `remote add ${s.host}:${s.port}: ${r.stderr}`);
  }
  const all = [...a.udids, ...b.udids].sort();
  let dPort = 0;
  await waitUntil(async () => (await cClient.listDevices()).length === 4, 15_000, 'four phones on C');

  await t.test('idevice_id -l on C lists the four UDIDs, with distinct DeviceIDs (instance << 24 | id)', { skip: requireTool('idevice_id', 'libimobiledevice-utils') }, async (t) => {
    const r = await run('idevice_id', ['-l'], { env });
    t.same(r.stdout.trim().split('\n').sort(), all);
    const list = await cClient.listDevices();
    const ids = list.map((d) => d.deviceId);
    t.equal(new Set(ids).size, 4, 'distinct DeviceIDs');
    t.same([...new Set(ids.map((id) => id >>> 24))].sort(), [1, 2], 'instances 1 and 2 in the top byte');
    const ls = await runCli(['remote', 'ls', '--json', '-S', cSocket]);
    const rows = ls.stdout.trim().split('\n').map((l) => JSON.parse(l) as { host: string; tls: boolean; state: string; devices: string[] });
    t.same(rows.map((r) => [r.host, r.tls, r.state, r.devices.sort()]), [['127.0.0.2', true, 'up', a.udids], ['127.0.0.3', true, 'up', b.udids]], 'remote ls');
  });

  await t.test("ideviceinfo through C runs a TLS lockdown session against a remote phone", { skip: requireTool('ideviceinfo', 'libimobiledevice-utils') }, async (t) => {
    const r = await run('ideviceinfo', ['-u', b.udids[0]!, '-k', 'ProductVersion'], { env });
    t.equal(r.stdout.trim(), '17.5', r.stderr);
  });

  await t.test("iproxy through C moves 64 MiB through a remote phone's echo intact", { skip: requireTool('iproxy', 'libusbmuxd-tools') }, async (t) => {
    const port = await freePort();
    const iproxy = killOnExit(spawn(findOnPath('iproxy')!, ['-u', a.udids[1]!, `${port}:${ECHO}`], { env, stdio: 'ignore' }));
    t.teardown(() => iproxy.kill('SIGKILL'));
    const s = await connectWithRetry(port, '127.0.0.1', 10_000);
    const r = await echo(s, 64 * MiB);
    s.destroy();
    t.ok(r.ok, '64 MiB echoed intact');
    t.comment(`figure: iproxy via a remote (TLS) echo 64 MiB each way in ${Math.round(r.ms)} ms = ${(64 / (r.ms / 1000)).toFixed(1)} MiB/s`);
  });

  await t.test('refused peers: no certificate, the wrong CA, an expired one; the log says which', async (t) => {
    const cases: Array<[string, Identity | undefined, RegExp]> = [
      ['no certificate', undefined, /refused: TLS handshake failed: .*peer did not return a certificate/],
      ['the wrong CA', certs.wrongCa, /refused: TLS handshake failed \(the peer's certificate: unable to get local issuer certificate\)/],
      ['an expired certificate', certs.expired, /refused: TLS handshake failed \(the peer's certificate: certificate has expired\)/],
    ];
    for (const [what, who, line] of cases) {
      const before = a.daemon.stderr.text.length;
      const probe = await tlsProbe(a.port, a.host, certs.ca, who);
      t.notOk(probe.answered, `${what}: not one usbmuxd byte back`);
      t.ok(probe.error, `${what}: the client is told (${probe.error})`);
      const m = await a.daemon.stderr.waitFor(line, 5_000);
      t.ok(m.index! >= 0 && a.daemon.stderr.text.indexOf(m[0]) >= 0, `${what}: logged`);
      t.comment(`A's log: ${a.daemon.stderr.text.slice(before).split('\n').find((l) => line.test(l))}`);
    }
  });

  await t.test('a remote client may read pair records but not write them (the default policy)', async (t) => {
    const s = tls.connect({ host: a.host, port: a.port, ca: readFileSync(certs.ca), cert: readFileSync(certs.hosts['host-c']!.cert), key: readFileSync(certs.hosts['host-c']!.key), checkServerIdentity: () => undefined });
    await new Promise((r) => s.once('secureConnect', r));
    const ask = (dict: PlistDict) => requestOver(s, dict);
    const read = await ask({ MessageType: 'ReadPairRecord', PairRecordID: a.udids[0]! });
    t.ok(read.PairRecordData instanceof Uint8Array, 'ReadPairRecord answers the record');
    const save = await ask({ MessageType: 'SavePairRecord', PairRecordID: a.udids[0]!, PairRecordData: Buffer.from('x') });
    t.equal(save.Number, 13, 'SavePairRecord: EACCES');
    const add = await ask({ MessageType: 'AddInstance', HostAddress: '127.0.0.9', PortNumber: 1 });
    t.equal(add.Number, 13, 'AddInstance from another host: EACCES');
    s.destroy();
    t.match(a.daemon.stderr.text, /SavePairRecord refused: remote clients may not change pair records/);
  });

  await t.test("usbfluxd's messages, byte for byte as usbfluxctl sends them", async (t) => {
    const list = await usbfluxctlQuery(cSocket, '<plist version="1.0"><dict><key>MessageType</key><string>Instances</string></dict></plist>');
    t.same([list.version, list.message, list.tag], [1, 8, 0], 'answered as usbfluxctl reads it: version 1, plist, tag 0');
    const inst = list.dict.Instances as Record<string, PlistDict>;
    t.same(Object.keys(inst).sort(), ['1', '2']);
    t.match(inst['1'], { IsUnix: false, Host: '127.0.0.2', Port: a.port, DeviceCount: 2 });
    t.same((inst['2']!.Devices as string[]).sort(), b.udids);
    const spare = await freePort();
    const added = await usbfluxctlQuery(cSocket, addXml('127.0.0.5', spare));
    t.same([added.tag, added.dict.MessageType, added.dict.Number], [0, 'Result', 0], 'AddInstance: Result 0');
    const again = await usbfluxctlQuery(cSocket, addXml('127.0.0.5', spare));
    t.equal(again.dict.Number, 2, 'AddInstance of one already there: BADDEV');
    const removed = await usbfluxctlQuery(cSocket, addXml('127.0.0.5', spare, 'RemoveInstance'));
    t.equal(removed.dict.Number, 0, 'RemoveInstance: Result 0');
    const gone = await usbfluxctlQuery(cSocket, addXml('127.0.0.5', spare, 'RemoveInstance'));
    t.equal(gone.dict.Number, 2, 'RemoveInstance of one not there: BADDEV');
    // Another user may list and connect, but not change what everyone sees.
    if (process.getuid?.() !== 0) return t.comment('not root: the other-user check needs a second uid');
    chmodSync(dir, 0o711);  // the socket is 0666; its directory must let that user reach it
    const nobody = await asUser(65534, [`
      const net = require('net'); const xml = ${JSON.stringify(addXml('127.0.0.6', spare))};
      const h = Buffer.alloc(16); h.writeUInt32LE(16 + xml.length, 0); h.writeUInt32LE(1, 4); h.writeUInt32LE(8, 8);
      const s = net.connect(${JSON.stringify(cSocket)}); s.write(Buffer.concat([h, Buffer.from(xml)]));
      s.on('data', (d) => { process.stdout.write(d.subarray(16).toString()); s.destroy(); });`]);
    t.match(nobody.stdout, /<key>Number<\/key>\s*<integer>13<\/integer>/, 'AddInstance from uid 65534: 13 (EACCES)');
    t.match(c.stderr.text, /AddInstance refused: uid 65534/);
  });

  await t.test('a remote that hangs is Detached within the keepalive; a killed one mid-transfer: EOF, no leak, and it comes back', async (t) => {
    const events: UsbmuxEvent[] = [];
    const listener = await cClient.listen();
    t.teardown(() => listener.close());
    void (async () => {
      for await (const e of listener) events.push(e);
    })().catch(() => undefined);
    const fdsBefore = openFds(c.pid);
    const bDevice = (await cClient.listDevices()).find((d) => d.serialNumber === b.udids[0])!;
    const open: Socket = await cClient.connect(bDevice.deviceId, ECHO);
    const openEnded = new Promise<string>((resolve) => {
      open.once('end', () => resolve('end'));
      open.once('error', (e) => resolve(e.message));
    });
    open.resume();
    // Hung: no FIN, no RST; only the keepalive notices.
    process.kill(b.daemon.pid, 'SIGSTOP');
    const stopped = Date.now();
    await waitUntil(() => events.filter((e) => e.type === 'detached').length >= 2, 4 * KEEPALIVE_MS + 2_000, "B's phones Detached");
    const detachedMs = Date.now() - stopped;
    t.ok(detachedMs <= 2 * KEEPALIVE_MS + 1_500, `Detached ${detachedMs} ms after the host hung (keepalive ${KEEPALIVE_MS} ms)`);
    t.comment(`figure: a hung remote's phones Detached after ${detachedMs} ms (keepalive ${KEEPALIVE_MS} ms)`);
    t.equal(await Promise.race([openEnded, new Promise<string>((r) => setTimeout(() => r('nothing'), 2_000))]), 'end', "a connection to the hung host's phone reads EOF");
    open.destroy();
    process.kill(b.daemon.pid, 'SIGCONT');
    await waitUntil(async () => (await cClient.listDevices()).length === 4, 15_000, "B's phones back after it woke");

    // Killed mid-transfer: the client's connection ends with EOF.
    const fresh = (await cClient.listDevices()).find((d) => d.serialNumber === bDevice.serialNumber)!;
    const s: Socket = await cClient.connect(fresh.deviceId, ECHO);
    let echoed = 0;
    s.on('data', (d: Buffer) => (echoed += d.length));
    const ended = new Promise<string>((resolve) => {
      s.once('end', () => resolve('end'));
      s.once('error', (e) => resolve(e.message));
    });
    const chunk = Buffer.alloc(64 * 1024, 7);
    const pump = setInterval(() => s.writable && s.write(chunk), 1);
    await waitUntil(() => echoed > 4 * MiB, 10_000, 'bytes flowing');
    b.daemon.child.kill('SIGKILL');
    const how = await Promise.race([ended, new Promise<string>((r) => setTimeout(() => r('nothing'), 5_000))]);
    clearInterval(pump);
    s.destroy();
    t.equal(how, 'end', 'the client reads EOF');
    await waitUntil(async () => (await cClient.listDevices()).length === 2, 5_000, "B's phones gone");
    await waitUntil(() => openFds(c.pid) <= fdsBefore, 5_000, `C's descriptors back to ${fdsBefore}`).then(
      () => t.pass('no descriptor left behind'),
      (err: Error) => t.fail(err.message),
    );
    // B again, on the same port, with the same phones.
    const b2 = await serving(top, dir, 'b', '127.0.0.3', tlsArgs(certs, certs.hosts['host-b']!), b.port);
    t.same(b2.udids, b.udids, 'B restarted with its phones');
    await waitUntil(async () => (await cClient.listDevices()).length === 4, 35_000, 'the four back on C');
    t.pass('the restarted host\'s phones are listed again');
  });

  await t.test('--remote-insecure serves plain TCP, warns, and C reaches it only with --insecure', async (t) => {
    const dSocket = join(dir, 'd.sock');
    const d = spawnDaemon(top, ['-f', '--no-usb', '-S', dSocket, '-P', 'NONE', '-C', join(dir, 'd-cfg'), '--remote-listen', '127.0.0.4:0', '--remote-insecure']);
    await d.ready();
    const m = await d.stderr.waitFor(/\[warning\] remote usbmux on 127\.0\.0\.4:(\d+) is plain TCP/, 5_000);
    t.ok(m, 'the warning at start');
    const plain = new UsbmuxClient({ address: `127.0.0.4:${m[1]}` });
    t.same(await plain.listDevices(), [], 'a plain usbmuxd client gets answers');
    // TLS (C's own identity) to a plain listener: never up, and C says why.
    const tlsFirst = await runCli(['remote', 'add', `127.0.0.4:${m[1]}`, '-S', cSocket]);
    t.equal(tlsFirst.code, 0, tlsFirst.stderr);
    await c.stderr.waitFor(/remote 3 \(127\.0\.0\.4:\d+\): cannot reach it: /, 5_000);
    const ls = await runCli(['remote', 'ls', '--json', '-S', cSocket]);
    const row = ls.stdout.trim().split('\n').map((l) => JSON.parse(l) as { host: string; state: string; lastError: string }).find((r) => r.host === '127.0.0.4');
    t.match(row, { state: /^(backoff|connecting)$/, lastError: /cannot reach it/ }, 'remote ls shows it down, and why');
    t.equal((await runCli(['remote', 'rm', `127.0.0.4:${m[1]}`, '-S', cSocket])).code, 0, 'removed');
    const r = await runCli(['remote', 'add', `127.0.0.4:${m[1]}`, '--insecure', '-S', cSocket]);
    t.equal(r.code, 0, r.stderr);
    await c.stderr.waitFor(/remote 3 \(127\.0\.0\.4:\d+\): added \(plain TCP, unauthenticated, by cli\)/, 5_000);
    await c.stderr.waitFor(/remote 3 \(127\.0\.0\.4:\d+\): listening/, 5_000);
    t.pass('listening to the plain instance');
    dPort = Number(m[1]);
  });

  await t.test('a hostile remote host is bounded: 256 phones at most, an oversized message ends its link', async (t) => {
    // A fake remote over plain TCP: answers Listen, then lists 300 phones; once
    // breakOnPing is set, it answers the keepalive's ReadBUID with a header
    // claiming 256 MiB.
    let breakOnPing = false;
    const fake = net.createServer((sock) => {
      let got = Buffer.alloc(0);
      sock.on('error', () => undefined);
      sock.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        while (got.length >= 16 && got.length >= got.readUInt32LE(0)) {
          const request = parsePlist(got.subarray(16, got.readUInt32LE(0))) as PlistDict;
          const tag = got.readUInt32LE(12);
          got = got.subarray(got.readUInt32LE(0));
          if (request.MessageType === 'Listen') {
            sock.write(plistMessage(tag, { MessageType: 'Result', Number: 0 }));
            for (let id = 1; id <= 300; id++) {
              sock.write(plistMessage(0, { MessageType: 'Attached', DeviceID: id, Properties: { ConnectionType: 'USB', SerialNumber: `hostile-${id}`, Junk: 'x'.repeat(4000) } }));
            }
          } else if (request.MessageType === 'ReadBUID' && !breakOnPing) {
            sock.write(plistMessage(tag, { BUID: 'FAKE-BUID' }));
          } else if (request.MessageType === 'ReadBUID') {
            const huge = Buffer.alloc(16);
            huge.writeUInt32LE(256 * MiB, 0);
            huge.writeUInt32LE(1, 4);
            huge.writeUInt32LE(8, 8);
            sock.write(huge);
          }
        }
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.7', r));
    t.teardown(() => fake.close());
    const fakePort = (fake.address() as net.AddressInfo).port;
    const before = (await cClient.listDevices()).length;
    t.equal((await runCli(['remote', 'add', `127.0.0.7:${fakePort}`, '--insecure', '-S', cSocket])).code, 0, 'added');
    await c.stderr.waitFor(/remote \d+ \(127\.0\.0\.7:\d+\): more than 256 phones; hostile-257 is not listed/, 5_000);
    const ls = await runCli(['remote', 'ls', '--json', '-S', cSocket]);
    const row = ls.stdout.trim().split('\n').map((l) => JSON.parse(l) as { host: string; devices: string[] }).find((r) => r.host === '127.0.0.7');
    t.ok(row && row.devices.length <= 256, `at most 256 of its phones listed (${row?.devices.length} now)`);
    // 256 phones make a ListDevices reply larger than the 64 KiB a request may be; the client reads it whole.
    await waitUntil(async () => (await cClient.listDevices()).length === before + 256, 5_000, 'all 256 of its phones in ListDevices');
    t.pass('ListDevices lists all 256 (a reply past 64 KiB)');
    breakOnPing = true;
    const one = await usbfluxctlQuery(cSocket, '<plist version="1.0"><dict><key>MessageType</key><string>ListListeners</string></dict></plist>');
    t.equal(one.version, 1, 'the daemon still answers');
    await c.stderr.waitFor(/remote \d+ \(127\.0\.0\.7:\d+\): its keepalive broke: message length 268435456 is outside 16\.\.65536/, 5_000);
    await waitUntil(async () => (await cClient.listDevices()).length === before, 5_000, 'its phones Detached with its link');
    t.pass('its phones are Detached with its link');
    t.equal((await runCli(['remote', 'rm', `127.0.0.7:${fakePort}`, '-S', cSocket])).code, 0, 'removed');
  });

  await t.test('DNS-SD: a daemon with --remote-discover all adds the TLS listeners (_tsmuxd._tcp) and the plain one (_remote-mobdev._tcp)', async (t) => {
    const e = spawnDaemon(t, ['-f', '--no-usb', '-S', join(dir, 'e.sock'), '-P', 'NONE', '-C', join(dir, 'e-cfg'), '--remote-discover', 'all', ...tlsArgs(certs, certs.hosts['host-c']!)]);
    await e.ready();
    const started = Date.now();
    for (const [host, port, how] of [[a.host, a.port, 'TLS'], [b.host, b.port, 'TLS'], ['127.0.0.4', dPort, 'plain TCP, unauthenticated']] as const) {
      const line = await e.stderr.waitFor(new RegExp(`remote \\d+ \\(${host.replace(/\./g, '\\.')}:${port}\\): added \\(${how}, by dns-sd\\)`), 10_000);
      t.ok(line, `found and added ${host}:${port} (${how})`);
    }
    const eClient = new UsbmuxClient({ address: `UNIX:${join(dir, 'e.sock')}` });
    await waitUntil(async () => (await eClient.listDevices()).length >= 4, 10_000, "A's and B's phones on E");
    t.comment(`figure: DNS-SD discovery to four phones listed in ${Date.now() - started} ms`);
  });
});

/** One plist request over a connected socket, its answer's dict. */
function requestOver(s: Socket, dict: PlistDict): Promise<PlistDict> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 16 && got.length >= got.readUInt32LE(0)) {
        s.off('data', onData);
        resolve(parsePlist(got.subarray(16, got.readUInt32LE(0))) as PlistDict);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(plistMessage(1, dict));
  });
}
