// A phone on Wi-Fi, for real: the daemon and the simulated phone in two
// network namespaces joined by a veth pair (root only), so mDNS multicast,
// the phone's address and every TCP connection are the kernel's. The phone
// is also on the daemon's virtual cable, as a phone on USB and Wi-Fi at once.
//
// Debian's libimobiledevice 1.3.0 and libusbmuxd 2.0.2 dial NetworkAddress
// themselves (BSD layout); our client library and `tsmuxd forward` go
// through the daemon's Connect (native splice). Figures are printed as
// comments, never asserted.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import type { Socket } from 'node:net';
import { join } from 'node:path';

import { echo } from './helpers/windowed-echo.js';

import { UsbmuxClient, type UsbmuxDevice, type UsbmuxEvent } from '../src/client/index.js';
import { encodeMessage, MessageFramer, MessageType, ProtocolVersion } from '../src/protocol/usbmux.js';
import { parsePlist, toXml, type PlistDict } from '../src/protocol/plist-codec.js';
import { connect as netConnect } from 'node:net';
import {
  freePort,
  killOnExit,
  MAIN_JS,
  OutputWatch,
  run,
  spawnDaemon,
  tempDir,
  waitUntil,
} from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { packageRoot } from '../src/native/native-error.js';
import { netnsUnavailable, vethPair, type VethPair } from './helpers/netns.js';

const MiB = 1024 * 1024;
const ECHO = 7;
const HEARTBEAT_INTERVAL_S = 2;
const GRACE_MS = 3000;

t.setTimeout(900_000);

interface Sim {
  child: ChildProcess;
  out: OutputWatch;
  send(line: string): void;
}

function startSim(pair: VethPair, args: string[]): Sim {
  const argv = [...pair.exec(pair.phoneNs), process.execPath, MAIN_JS, 'sim', ...args];
  const child = killOnExit(spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }));
  return { child, out: new OutputWatch(child.stdout!), send: (line) => child.stdin!.write(`${line}\n`) };
}

async function stopSim(sim: Sim): Promise<void> {
  if (sim.child.exitCode !== null || sim.child.signalCode !== null) return;
  const exited = new Promise((r) => sim.child.once('exit', r));
  sim.send('quit');
  const timer = setTimeout(() => sim.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Events of one Listen connection, with the time each came. */
async function listen(address: string, t: { teardown(fn: () => void): void }) {
  const events: Array<{ at: number; ev: UsbmuxEvent }> = [];
  const listener = await new UsbmuxClient({ address }).listen();
  t.teardown(() => listener.close());
  void (async () => {
    try {
      for await (const ev of listener) events.push({ at: Date.now(), ev });
    } catch {
      // closed
    }
  })();
  return {
    events,
    async next(pred: (ev: UsbmuxEvent) => boolean, after: number, timeoutMs: number): Promise<{ at: number; ev: UsbmuxEvent }> {
      return waitUntil(async () => events.find((e) => e.at >= after && pred(e.ev)), timeoutMs, 'a Listen event');
    },
  };
}

const isNetwork = (d: UsbmuxDevice) => d.properties.ConnectionType === 'Network';

/** Sequential Connects to `port`, each closed at once: Connects per second. */
async function connectRate(client: UsbmuxClient, deviceId: number, count: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const s = await client.connect(deviceId, ECHO);
    s.destroy();
  }
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** A raw plist request, as a client announcing `clientVersion` sends it. */
async function rawListDevices(socketPath: string, clientVersion: string, progName = 'idevice_id'): Promise<PlistDict> {
  const s = netConnect(socketPath);
  await new Promise((r) => s.once('connect', r));
  const body = Buffer.from(
    toXml({ MessageType: 'ListDevices', ClientVersionString: clientVersion, ProgName: progName, kLibUSBMuxVersion: 3 }),
  );
  s.write(encodeMessage(ProtocolVersion.Plist, MessageType.Plist, 1, body));
  const framer = new MessageFramer();
  const reply = await new Promise<PlistDict>((resolve) => {
    s.on('data', (d: Buffer) => {
      framer.push(d);
      const m = framer.next();
      if (m) resolve(parsePlist(m.body) as PlistDict);
    });
  });
  s.destroy();
  return reply;
}

async function main(): Promise<void> {
  const pair = vethPair(t);
  const dir = tempDir(t, 'tsmuxd-wifi-');
  const socketPath = join(dir, 'usbmuxd.sock');
  const cable = join(dir, 'cable');
  const daemon = spawnDaemon(
    t,
    ['-f', '--no-usb', '-S', socketPath, '-P', join(dir, 'pid'), '-C', join(dir, 'lockdown'), '--cable', cable, '--wifi', 'auto', '--wifi-grace-ms', String(GRACE_MS), '-v'],
    process.env,
    pair.exec(pair.hostNs),
  );
  const address = await daemon.ready();
  const client = new UsbmuxClient({ address });
  const events = await listen(address, t);
  const env = { ...process.env, USBMUXD_SOCKET_ADDRESS: address };
  const inHost = pair.exec(pair.hostNs);

  const simState = join(dir, 'sim');
  const simStarted = Date.now();
  const sim = startSim(pair, ['--cable', cable, '--wifi', '--address', pair.phoneAddress, '--state-dir', simState, '--heartbeat-interval', String(HEARTBEAT_INTERVAL_S)]);
  t.teardown(() => stopSim(sim));
  const wifiLine = await sim.out.waitFor(/^\{"event":"wifi".*$/m, 20_000);
  const wifi = JSON.parse(wifiLine[0]) as { udid: string; instance: string };
  const udid = wifi.udid;
  t.comment(`sim in ${pair.phoneNs} at ${pair.phoneAddress}: ${wifi.instance}`);

  // The daemon pairs the phone over the cable; the Wi-Fi entry follows once
  // the record is stored (its WiFiMACAddress matches the mDNS name).
  const usbUp = await events.next((e) => e.type === 'attached' && e.device.serialNumber === udid && !isNetwork(e.device), simStarted, 60_000);
  const netUp = await events.next((e) => e.type === 'attached' && e.device.serialNumber === udid && isNetwork(e.device), simStarted, 60_000);
  t.comment(`figure: first listing on the network ${netUp.at - usbUp.at} ms after the USB listing (pairing over the cable, then the mDNS match and the heartbeat); ${netUp.at - simStarted} ms after the sim started`);

  const list = await client.listDevices();
  const usb = list.find((d) => d.serialNumber === udid && !isNetwork(d))!;
  const net = list.find((d) => d.serialNumber === udid && isNetwork(d))!;

  await t.test('USB and Wi-Fi at once: two entries, their own DeviceIDs', async (t) => {
    t.ok(usb, 'the USB entry');
    t.ok(net, 'the Network entry');
    t.not(usb.deviceId, net.deviceId, 'different DeviceIDs');
    const p = net.properties;
    t.equal(p.SerialNumber, udid);
    t.equal(p.EscapedFullServiceName, `${wifi.instance}.`, 'EscapedFullServiceName is the mDNS instance');
    t.type(p.InterfaceIndex, 'number');
    t.ok((p.InterfaceIndex as number) > 0, 'InterfaceIndex is the veth');
    const na = Buffer.from(p.NetworkAddress as Uint8Array);
    t.equal(na.length, 128, 'NetworkAddress is 128 bytes');
    t.same([na[0], na[1]], [0x10, 0x02], 'BSD layout by default: sa_len 16, AF_INET');
    t.equal([...na.subarray(4, 8)].join('.'), pair.phoneAddress, 'the phone’s address');
  });

  await t.test('binary v0 clients, which have no ConnectionType, see only the USB entry', async (t) => {
    const v0 = await new UsbmuxClient({ address, version: 0 }).listDevices();
    const mine = v0.filter((d) => d.serialNumber === udid);
    t.equal(mine.length, 1, 'one entry');
    t.equal(mine[0]?.deviceId, usb.deviceId, 'the USB one');
  });

  await t.test('a libimobiledevice tool on libusbmuxd 2.1 gets the native layout, and can dial it; iproxy keeps BSD', async (t) => {
    const reply = await rawListDevices(socketPath, 'libusbmuxd 2.1.0');
    const entries = (reply.DeviceList as PlistDict[]).map((e) => e.Properties as PlistDict);
    const entry = entries.find((p) => p.ConnectionType === 'Network')!;
    const na = Buffer.from(entry.NetworkAddress as Uint8Array);
    t.equal(na.readUInt16LE(0), 2, 'u16 sa_family AF_INET at offset 0');
    t.not(na[0], 0, 'byte 0 is not 0');
    // What libimobiledevice 1.4 does: cast to struct sockaddr_in and connect().
    const ipText = [...na.subarray(4, 8)].join('.');
    const script = `const s=require('net').connect(62078,'${ipText}',()=>{const b=Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>Request</key><string>QueryType</string></dict></plist>');const h=Buffer.alloc(4);h.writeUInt32BE(b.length);s.write(Buffer.concat([h,b]))});let got=Buffer.alloc(0);s.on('data',d=>{got=Buffer.concat([got,d]);if(got.length>=4&&got.length>=4+got.readUInt32BE(0)){console.log(got.subarray(4).toString());s.destroy()}});`;
    const r = await run(inHost[0]!, [...inHost.slice(1), process.execPath, '-e', script], { timeoutMs: 15_000 });
    t.match(r.stdout, /com\.apple\.mobile\.lockdown/, `QueryType at ${ipText}:62078, dialled from the cast bytes`);
    const old = await rawListDevices(socketPath, 'libusbmuxd 2.0.2');
    const oldEntry = (old.DeviceList as PlistDict[]).map((e) => e.Properties as PlistDict).find((p) => p.ConnectionType === 'Network')!;
    t.same([...Buffer.from(oldEntry.NetworkAddress as Uint8Array).subarray(0, 2)], [0x10, 0x02], 'libusbmuxd 2.0.2: BSD');
    const iproxy = await rawListDevices(socketPath, 'libusbmuxd 2.1.1', 'iproxy');
    const iproxyEntry = (iproxy.DeviceList as PlistDict[]).map((e) => e.Properties as PlistDict).find((p) => p.ConnectionType === 'Network')!;
    t.same([...Buffer.from(iproxyEntry.NetworkAddress as Uint8Array).subarray(0, 2)], [0x10, 0x02], "libusbmuxd 2.1.1's iproxy: BSD (it reads byte 1)");
  });

  await t.test("Debian's idevice_id -n lists the phone", { skip: requireTool('idevice_id', 'libimobiledevice-utils') }, async (t) => {
    const r = await run(inHost[0]!, [...inHost.slice(1), 'idevice_id', '-n'], { env, timeoutMs: 15_000 });
    t.comment(`$ idevice_id -n\n${r.stdout}${r.stderr}exit ${r.code}`);
    t.equal(r.code, 0);
    t.equal(r.stdout, `${udid}\n`, 'the UDID, and nothing else');
  });

  await t.test("Debian's ideviceinfo -n reads ProductVersion over the network", { skip: requireTool('ideviceinfo', 'libimobiledevice-utils') }, async (t) => {
    const r = await run(inHost[0]!, [...inHost.slice(1), 'ideviceinfo', '-n', '-u', udid, '-k', 'ProductVersion'], { env, timeoutMs: 30_000 });
    t.comment(`$ ideviceinfo -n -u ${udid} -k ProductVersion\n${r.stdout}${r.stderr}exit ${r.code}`);
    t.equal(r.code, 0);
    t.equal(r.stdout, '17.5\n');
  });

  await t.test("Debian's iproxy -n moves 64 MiB through the echo service intact", { skip: requireTool('iproxy', 'libusbmuxd-tools') }, async (t) => {
    const port = 20000 + (process.pid % 20000);
    const iproxy = killOnExit(spawn(inHost[0]!, [...inHost.slice(1), 'iproxy', '-n', '-u', udid, `${port}:${ECHO}`], { env, stdio: 'ignore' }));
    t.teardown(() => iproxy.kill('SIGKILL'));
    const helper = join(packageRoot, 'test', 'helpers', 'netns-echo.mjs');
    const r = await run(inHost[0]!, [...inHost.slice(1), process.execPath, helper, '127.0.0.1', String(port), String(64 * MiB)], { timeoutMs: 150_000 });
    const result = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { bytes?: number; sent?: string; received?: string; ms?: number; error?: string };
    t.notOk(result.error, 'no error');
    t.equal(result.bytes, 64 * MiB, 'every byte came back');
    t.equal(result.received, result.sent, 'SHA-256 equal');
    if (result.ms) t.comment(`figure: iproxy -n echo 64 MiB each way in ${Math.round(result.ms)} ms = ${(64 / (result.ms / 1000)).toFixed(1)} MiB/s`);
  });

  await t.test('our client library: Connect to the network entry moves 64 MiB; the same phone on the cable beside it', async (t) => {
    for (const [what, d] of [
      ['network', net],
      ['cable', usb],
    ] as const) {
      const s = await client.connect(d.deviceId, ECHO);
      const r = await echo(s, 64 * MiB);
      s.destroy();
      t.ok(r.ok, `${what}: 64 MiB echoed intact`);
      t.comment(`figure: ${what} echo 64 MiB each way in ${Math.round(r.ms)} ms = ${(64 / (r.ms / 1000)).toFixed(1)} MiB/s`);
      const rate = await connectRate(client, d.deviceId, 200);
      t.comment(`figure: ${what} Connect rate (200 sequential, port 7): ${rate.toFixed(0)}/s`);
    }
  });

  await t.test('bytes pipelined behind a Connect to the network entry reach the phone first', async (t) => {
    const s = netConnect(socketPath);
    await new Promise((r) => s.once('connect', r));
    const body = Buffer.from(toXml({ MessageType: 'Connect', DeviceID: net.deviceId, PortNumber: ((ECHO & 0xff) << 8) | (ECHO >> 8), ProgName: 'pipeliner' }));
    // The request and the first bytes for the phone in one write, as a hasty client sends them.
    s.write(Buffer.concat([encodeMessage(ProtocolVersion.Plist, MessageType.Plist, 7, body), Buffer.from('early bytes')]));
    const framer = new MessageFramer();
    let after: Buffer = Buffer.alloc(0);
    let result: PlistDict | undefined;
    s.on('data', (d: Buffer) => {
      if (result) {
        after = Buffer.concat([after, d]);
        return;
      }
      framer.push(d);
      const m = framer.next();
      if (m) {
        result = parsePlist(m.body) as PlistDict;
        after = framer.takeRemainder();
      }
    });
    await waitUntil(() => after.length >= 11, 10_000, 'the Result and the echo');
    t.equal(result?.Number, 0, 'Result 0');
    t.equal(after.toString(), 'early bytes', 'the echo of what came behind the request');
    s.destroy();
  });

  await t.test('a half-close passes through the splice: the client ends, the echo ends', async (t) => {
    const s = await client.connect(net.deviceId, ECHO);
    let back = 0;
    const ended = new Promise<void>((resolve, reject) => {
      s.on('data', (d: Buffer) => (back += d.length));
      s.once('end', () => resolve());
      s.once('error', reject);
      setTimeout(() => reject(new Error(`no end after ${back} bytes`)), 15_000);
    });
    // 1 MiB, then at once the end: what the echo still sends after the
    // client's FIN must come back before the phone's.
    s.end(randomFillSync(Buffer.alloc(MiB)));
    await ended;
    t.equal(back, MiB, 'every byte echoed before the EOF');
    t.pass('the client half-closed; the phone closed; the client read EOF');
    s.destroy();
  });

  await t.test('backpressure through the splice: a client that stops reading stops the phone, and nothing is lost', async (t) => {
    const s = await client.connect(net.deviceId, ECHO);
    s.pause();  // read nothing: the echo's replies pile up until everyone's buffers are full
    // Far more than every buffer on the path can hold (kernel TCP buffers autotune to several MiB each).
    const total = 256 * MiB;
    const hash = createHash('sha256');
    let written = 0;
    const block = randomFillSync(Buffer.alloc(256 * 1024));
    const writeMore = () => {
      while (written < total && s.writableLength < 4 * MiB) {
        s.write(block);
        hash.update(block);
        written += block.length;
      }
    };
    writeMore();
    const pump = setInterval(writeMore, 10);
    await new Promise((r) => setTimeout(r, 1500));
    const stalledAt = written;
    await new Promise((r) => setTimeout(r, 1000));
    clearInterval(pump);
    t.ok(stalledAt < total, `with nothing read, the writes stalled at ${(stalledAt / MiB).toFixed(1)} MiB of ${total / MiB}`);
    t.equal(written, stalledAt, 'and stayed stalled: the phone was not read past what the buffers hold');
    // Mostly kernel TCP buffers (the daemon's socket to the phone, the sim's
    // relay sockets), plus this test's own 4 MiB write queue; the daemon's
    // splice holds at most 2 x 256 KiB of it.
    t.comment(`figure: written while the client read nothing, before the writes stalled: ${(stalledAt / MiB).toFixed(1)} MiB`);
    // Now read: everything written comes back, in order.
    const got = createHash('sha256');
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${received} of ${written} came back`)), 60_000);
      s.on('data', (d: Buffer) => {
        got.update(d);
        received += d.length;
        if (received >= written) {
          clearTimeout(timer);
          resolve();
        }
      });
      s.resume();
    });
    t.equal(received, written, 'every byte came back once the client read');
    t.equal(got.digest('hex'), hash.digest('hex'), 'intact');
    s.destroy();
  });

  await t.test('tsmuxd wifi: status, disable (the entry goes), enable (it comes back)', async (t) => {
    const status = await run(process.execPath, [MAIN_JS, 'wifi', 'status', udid, '--socket', address], { timeoutMs: 30_000 });
    t.equal(status.code, 0, status.stderr);
    t.match(status.stdout, /enabled/);
    const before = Date.now();
    const off = await run(process.execPath, [MAIN_JS, 'wifi', 'disable', udid, '--socket', address], { timeoutMs: 30_000 });
    t.match(off.stdout, /disabled/, off.stderr);
    const gone = await events.next((e) => e.type === 'detached' && e.deviceId === net.deviceId, before, 30_000);
    t.comment(`figure: Detached ${gone.at - before} ms after wifi disable`);
    const on = await run(process.execPath, [MAIN_JS, 'wifi', 'enable', udid, '--socket', address], { timeoutMs: 30_000 });
    t.match(on.stdout, /enabled/, on.stderr);
    const back = await events.next((e) => e.type === 'attached' && isNetwork(e.device) && e.device.serialNumber === udid, gone.at, 30_000);
    t.comment(`figure: listed again ${back.at - gone.at} ms after wifi enable`);
  });

  await t.test('the heartbeat stops (wifi-off): Detached within interval + grace; back (wifi-on): Attached', async (t) => {
    const current = (await client.listDevices()).find((d) => d.serialNumber === udid && isNetwork(d))!;
    const off = Date.now();
    sim.send('wifi-off');
    const gone = await events.next((e) => e.type === 'detached' && e.deviceId === current.deviceId, off, 30_000);
    const waited = gone.at - off;
    t.pass(`Detached ${waited} ms after wifi-off`);
    t.comment(`figure: heartbeat stop -> Detached ${waited} ms (Interval ${HEARTBEAT_INTERVAL_S} s + grace ${GRACE_MS} ms = ${HEARTBEAT_INTERVAL_S * 1000 + GRACE_MS} ms)`);
    const on = Date.now();
    sim.send('wifi-on');
    const back = await events.next((e) => e.type === 'attached' && isNetwork(e.device) && e.device.serialNumber === udid, on, 30_000);
    t.comment(`figure: discovery to listed (wifi-on: mDNS announcement, lockdown session, heartbeat) ${back.at - on} ms`);
    const usbStill = (await client.listDevices()).filter((d) => d.serialNumber === udid);
    t.equal(usbStill.length, 2, 'both entries again');
  });

  await t.test('on Wi-Fi alone: tsmuxd forward through the daemon moves 64 MiB', async (t) => {
    sim.send('unplug');
    await waitUntil(async () => ((await client.listDevices()).filter((d) => d.serialNumber === udid).length === 1 ? true : undefined), 15_000, 'the USB entry gone');
    const [only] = (await client.listDevices()).filter((d) => d.serialNumber === udid);
    t.ok(only && isNetwork(only), 'only the network entry is left');
    const port = await freePort();
    const fwd = spawnDaemon(t, ['forward', '--udid', udid, '--socket', address, `${port}:${ECHO}`]);
    const s = await waitUntil(
      async () =>
        new Promise<Socket | undefined>((resolve) => {
          const c = netConnect(port, '127.0.0.1', () => resolve(c));
          c.once('error', () => resolve(undefined));
        }),
      10_000,
      'tsmuxd forward listening',
    );
    const r = await echo(s, 64 * MiB);
    s.destroy();
    t.ok(r.ok, '64 MiB intact through tsmuxd forward');
    t.comment(`figure: tsmuxd forward to the network entry: 64 MiB each way in ${Math.round(r.ms)} ms = ${(64 / (r.ms / 1000)).toFixed(1)} MiB/s`);
    await fwd.stop(5000);
    sim.send('plug');
  });

  await t.test('bad neighbours: a flood, an oversized TXT, bogus addresses, a lockdownd that goes silent', async (t) => {
    // A second address in the phone's namespace for the silent lockdownd.
    const silentAddress = pair.phoneAddress.replace(/\.2$/, '.3');
    await run('ip', ['-n', pair.phoneNs, 'addr', 'add', `${silentAddress}/24`, 'dev', `tsp${process.pid % 100000}`], { timeoutMs: 5000 });
    const mac = wifi.instance.split('@')[0]!;
    const helper = join(packageRoot, 'test', 'helpers', 'mdns-hostile.mjs');
    const argv = [...pair.exec(pair.phoneNs), process.execPath, helper, pair.phoneAddress, silentAddress, mac];
    const hostile = killOnExit(spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }));
    t.teardown(() => hostile.kill('SIGKILL'));
    const out = new OutputWatch(hostile.stdout!);
    await out.waitFor(/done/, 30_000);
    // The silent lockdownd costs the daemon one lockdown timeout (10 s).
    await daemon.stderr.waitFor(/wifi: \S+silent|wifi: .*10\.231\.\d+\.3: .*within/, 40_000).catch(() => undefined);
    const log = daemon.stderr.text;
    const count = (re: RegExp) => log.split('\n').filter((l) => re.test(l)).length;
    t.ok(count(/over 200 packets a second/) >= 1 && count(/over 200 packets a second/) <= 2, 'the flood: logged once (a minute)');
    t.equal(count(/TXT record of .* over the caps/), 1, 'the oversized TXT: one line');
    t.ok(count(/bogus A record/) >= 1 && count(/bogus A record/) <= 2, 'bogus addresses: one line a minute');
    t.ok(count(/phones known already/) <= 1, 'the instance cap: at most one line');
    const silentLines = log.split('\n').filter((l) => l.includes(silentAddress) && /wifi:/.test(l));
    t.ok(silentLines.length >= 1, `the silent lockdownd: ${silentLines[0] ?? 'no line'}`);
    const listed = (await client.listDevices()).filter((d) => d.serialNumber === udid);
    t.equal(listed.filter(isNetwork).length, 1, 'the real phone is still listed on the network, once');
    const s = await client.connect(listed.find(isNetwork)!.deviceId, ECHO);
    const r = await echo(s, 4 * MiB);
    s.destroy();
    t.ok(r.ok, 'and still usable: 4 MiB echoed');
    hostile.stdin!.end();
  });

  await t.test('a private Wi-Fi address: matched by identifier/authTag', async (t) => {
    await stopSim(sim);
    await waitUntil(async () => ((await client.listDevices()).some((d) => d.serialNumber === udid) ? undefined : true), 30_000, 'the phone gone');
    const started = Date.now();
    const priv = startSim(pair, ['--wifi', '--private-address', '--address', pair.phoneAddress, '--state-dir', simState, '--heartbeat-interval', String(HEARTBEAT_INTERVAL_S)]);
    t.teardown(() => stopSim(priv));
    const line = await priv.out.waitFor(/^\{"event":"wifi".*$/m, 20_000);
    const info = JSON.parse(line[0]) as { instance: string };
    const mac = (instance: string) => instance.split('@')[0];
    t.not(mac(info.instance), mac(wifi.instance), 'the name carries a random MAC, not the WiFiMACAddress of the record');
    const up = await events.next((e) => e.type === 'attached' && isNetwork(e.device) && e.device.serialNumber === udid, started, 30_000);
    t.pass(`listed as ${udid} ${up.at - started} ms after the start, under ${info.instance}`);
    await stopSim(priv);
  });

  await t.test('the daemon logged no errors and stops cleanly', async (t) => {
    t.equal(daemon.exit(), null, 'still running');
    const e = await daemon.stop(10_000);
    t.same(e, { code: 0, signal: null });
    t.notMatch(daemon.stderr.text, /\[(error|fatal)\]/, 'no error was logged');
    const wifiLines = daemon.stderr.text.split('\n').filter((l) => /wifi:/.test(l));
    t.comment(`daemon wifi log:\n${wifiLines.slice(0, 30).join('\n')}`);
  });
}

const unavailable = netnsUnavailable();
if (unavailable) {
  t.pass(`skipped: ${unavailable}`, { skip: unavailable });
} else {
  await main();
}
