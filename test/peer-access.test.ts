// The daemon's own extension requests (tsmuxdStats) are for its user and
// root only: the kernel's peer credentials (SO_PEERCRED, through the addon's
// peerCredentials) decide. A client running as another user (nobody, via
// setpriv) gets Result 13 and a log line, and stays connected for what
// every user may ask (ListDevices).
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';

import { UsbmuxClient } from '../src/client/index.js';
import { Logger } from '../src/util/log.js';
import { native, NativeError } from '../src/native/addon.js';
import { extensionAccess, peerCredentialsOf } from '../src/server/access.js';
import { findOnPath } from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { startDaemon, tempDir } from './helpers/usbmuxd-harness.js';

const NOBODY = 65534;

/** Both ends of a real Unix socket connection. */
async function unixPair(t: Parameters<typeof tempDir>[0]): Promise<{ server: Socket; client: Socket }> {
  const path = join(tempDir(t), 'pair.sock');
  const listener = createServer();
  await new Promise<void>((r) => listener.listen(path, r));
  t.teardown(() => listener.close());
  const accepted = new Promise<Socket>((r) => listener.once('connection', r));
  const client = createConnection(path);
  const server = await accepted;
  t.teardown(() => {
    client.destroy();
    server.destroy();
  });
  return { server, client };
}

t.test('peerCredentials: the connecting process, from the kernel', async (t) => {
  const { server } = await unixPair(t);
  t.same(peerCredentialsOf(server), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() }, 'our own pid, uid and gid');
  const tcp = createServer();
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  t.teardown(() => tcp.close());
  const accepted = new Promise<Socket>((r) => tcp.once('connection', r));
  const client = createConnection((tcp.address() as { port: number }).port, '127.0.0.1');
  const peer = await accepted;
  t.teardown(() => {
    client.destroy();
    peer.destroy();
  });
  const fd = (peer as unknown as { _handle: { fd: number } })._handle.fd;
  t.throws(() => native.peerCredentials(fd), { code: 'ERR_NOT_UNIX_SOCKET' }, 'a TCP socket has none');
  t.throws(() => native.peerCredentials(-1), NativeError, 'a negative fd is refused');
  t.throws(() => native.peerCredentials(0x7ffffff0), { code: 'ERR_SYSTEM' }, 'a closed fd is refused');
  t.equal(peerCredentialsOf(peer), undefined, 'so peerCredentialsOf says nothing');
  t.same(extensionAccess(undefined), { allowed: false, reason: 'the connection carries no peer credentials (not a Unix socket)' });
  t.same(extensionAccess({ pid: 1, uid: 1000, gid: 1000 }, 1000), { allowed: true }, 'the daemon\'s own user');
  t.same(extensionAccess({ pid: 1, uid: 0, gid: 0 }, 1000), { allowed: true }, 'root');
  t.match(extensionAccess({ pid: 1, uid: 1001, gid: 1001 }, 1000), { allowed: false, reason: /uid 1001 is neither/ }, 'anyone else');
});

// Runs as nobody: sends each MessageType named in its second argument (a
// JSON list) in turn on one connection, and prints each reply's XML body as
// a JSON string per line.
const CLIENT_SCRIPT = `
const net = require('node:net');
const ask = (tag, type) => {
  const body = Buffer.from('<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>MessageType</key><string>' + type + '</string></dict></plist>');
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0); h.writeUInt32LE(1, 4); h.writeUInt32LE(8, 8); h.writeUInt32LE(tag, 12);
  return Buffer.concat([h, body]);
};
const types = JSON.parse(process.argv[2]);
const s = net.connect(process.argv[1]);
let buf = Buffer.alloc(0), replies = 0;
s.on('connect', () => s.write(ask(1, types[0])));
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 16 && buf.length >= buf.readUInt32LE(0)) {
    const n = buf.readUInt32LE(0);
    console.log(JSON.stringify(buf.subarray(16, n).toString()));
    buf = buf.subarray(n);
    if (++replies < types.length) s.write(ask(replies + 1, types[replies])); else s.end();
  }
});
s.on('error', (e) => { console.log(JSON.stringify('error ' + e.message)); process.exit(1); });
`;

const setpriv = findOnPath('setpriv');
const skip =
  process.getuid!() !== 0
    ? 'needs root to run a client as another user (setpriv to nobody)'
    : requireTool('setpriv', 'util-linux');

t.test('another user is refused the stats, keeps its connection; root is answered', { skip }, async (t) => {  const logFile = join(tempDir(t), 'daemon.log');
  const setup = await startDaemon(t, { sims: 1, log: new Logger({ file: logFile, verbosity: 3 }) });
  // mkdtemp made the directory 0700: nobody must be able to reach the 0666 socket in it.
  chmodSync(setup.dir, 0o711);

  const child = spawn(setpriv!, ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, '-e', CLIENT_SCRIPT, setup.socketPath, JSON.stringify(['tsmuxdStats', 'TunnelList', 'TunnelStop', 'tsmuxdCapture', 'ListDevices'])], {
    stdio: ['ignore', 'pipe', 'inherit'],
    // Not tap's NODE_OPTIONS: its hooks would write into the checkout as nobody.
    env: { PATH: process.env.PATH },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.equal(code, 0, 'the client as nobody ran');
  const [stats, tunnelList, tunnelStop, capture, list] = out.trim().split('\n').map((l) => JSON.parse(l) as string);
  const denied = /<key>MessageType<\/key>\s*<string>Result<\/string>\s*<key>Number<\/key>\s*<integer>13<\/integer>/;
  t.match(stats, denied, 'tsmuxdStats: Result 13 (EACCES)');
  t.match(tunnelList, denied, 'TunnelList: Result 13');
  t.match(tunnelStop, denied, 'TunnelStop: Result 13');
  t.match(capture, denied, 'tsmuxdCapture: Result 13, and the connection stays a command connection');
  t.match(list, /<key>DeviceList<\/key>\s*<array>\s*<dict>/, 'ListDevices on the same connection is answered, with the phone');
  const refusal = readFileSync(logFile, 'utf8').split('\n').find((l) => /tsmuxdStats refused/.test(l));
  t.match(refusal, /\[warning\] client \d+ \(pid \d+, uid 65534\): tsmuxdStats refused: uid 65534 is neither the daemon's user \(uid 0\) nor root/, 'one log line says who and why');

  const stats0 = await new UsbmuxClient({ address: setup.address, timeoutMs: 10_000 }).stats();
  t.equal(stats0.devices.length, 1, 'root (the daemon\'s own user here) gets the stats');
});
