// The capture tap (docs/capture.md), read back by Debian's tshark: a mux
// connection is a TCP stream that Follow reassembles byte for byte in both
// directions, with valid checksums; the preflight's lockdown session
// decrypts from the secrets in the file, a plist after StartSession
// included; the control packets and the statistics at the end are there.
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';

import t from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
import { Logger } from '../src/util/log.js';
import { PcapngSummary } from '../src/client/pcapng-summary.js';
import { ECHO_PORT } from '../src/protocol/sim-ports.js';
import { readExactly } from './helpers/harness.js';
import { countMatching, followRaw, tshark, tsharkMissing } from './helpers/tshark.js';
import { SLOW, startDaemon, tempDir, visibleDevices, waitUntil } from './helpers/usbmuxd-harness.js';

const skip = tsharkMissing();

/** A capture through the daemon's socket into `file`; end() finishes it. */
async function captureTo(address: string, file: string, request: Parameters<UsbmuxClient['capture']>[0] = {}) {
  const socket = await new UsbmuxClient({ address, timeoutMs: SLOW }).capture(request);
  const written = pipeline(socket, createWriteStream(file));
  return {
    end: async () => {
      socket.end();
      await written;
    },
  };
}

t.test('a Connect is a TCP stream that tshark follows byte for byte, both ways', { skip }, async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const file = join(tempDir(t), 'echo.pcapng');
  const capture = await captureTo(setup.address, file);
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [phone] = await client.listDevices();
  const echo = await client.connect(phone.deviceId, ECHO_PORT);
  const sent = randomBytes(300_000);
  echo.write(sent);
  const back = await readExactly(echo, sent.length);
  echo.destroy();
  await capture.end();

  const { fromOpener, toOpener } = await followRaw(file, 'tcp', 0);
  t.equal(fromOpener.length, sent.length, 'the host side sent every byte');
  t.ok(fromOpener.equals(sent), 'host to device: exactly the bytes written to the Connect');
  t.ok(toOpener.equals(back), 'device to host: exactly the bytes read back');

  const checked = ['-o', 'tcp.check_checksum:TRUE'];
  t.equal(await countMatching(file, 'tcp.checksum.status == 0', checked), 0, 'no TCP checksum is bad');
  t.ok((await countMatching(file, 'tcp.checksum.status == 1', checked)) > 10, 'the checksums are verified good');
  t.equal(await countMatching(file, `tcp.flags.syn == 1 && tcp.dstport == ${ECHO_PORT}`), 1, 'one SYN to the echo port');
  t.equal(await countMatching(file, 'tcp.flags.reset == 1'), 1, 'the close is the mux RST');
  t.equal(await countMatching(file, 'tcp.analysis.lost_segment || tcp.analysis.retransmission'), 0, 'no gap or retransmission in the sequence numbers');

  const control = await tshark(['-r', file, '-Y', 'frame.interface_id >= 0 && !tcp', '-T', 'fields', '-e', 'frame.comment']);
  t.match(control, /CONTROL info: AppleUSBDeviceMux::handleConnectResult new session/, "the phone's CONTROL log line is on the control interface, commented");
  const summary = new PcapngSummary();
  summary.push(readFileSync(file));
  t.equal(summary.counts.dropped, 0, 'the statistics at the end report no drops');
  t.equal(summary.counts.broken, undefined, 'the file is well-formed pcapng');
});

t.test("the preflight's lockdown session decrypts from the secrets in the file, StopSession inside TLS", { skip }, async (t) => {
  const file = join(tempDir(t), 'startup.pcapng');
  const setup = await startDaemon(t, { sims: 1, preflight: true, capture: file });
  const [listed] = await visibleDevices(setup.address, 1);
  const udid = listed!.serialNumber;
  await waitUntil(async () => setup.daemon.store.readRecord(udid).catch(() => null), 'the pair record');
  // Replugged, the phone gets a session with the stored record: StartSession, TLS, StopSession.
  const phone = setup.peers[0]!;
  phone.unplug();
  await waitUntil(async () => (await new UsbmuxClient({ address: setup.address }).listDevices()).length === 0, 'the unplug');
  phone.plug();
  const [back] = await visibleDevices(setup.address, 1);
  const result = await setup.daemon.preflight!.result(setup.daemon.devices.byId(back!.deviceId)!);
  t.ok(result === undefined || result === 'paired', `preflight: ${result ?? 'done'}`);
  await setup.daemon.stop();  // the capture ends with the daemon, its statistics written

  const streams = (await tshark(['-r', file, '-Y', 'tls.handshake.type == 1', '-T', 'fields', '-e', 'tcp.stream'])).trim().split('\n');
  t.equal(streams.length, 1, `one ClientHello, found on port 62078 without a decode-as (streams: ${streams.join(',')})`);
  const stream = Number(streams[0]);
  const plain = await tshark(['-r', file, '-q', '-z', `follow,tcp,ascii,${stream}`]);
  t.match(plain, /<string>QueryType<\/string>/, 'before TLS the plists are plain');
  t.match(plain, /<string>StartSession<\/string>/, 'StartSession is plain');
  t.notMatch(plain, /StopSession/, 'StopSession is not in the TCP bytes: it went inside TLS');
  const decrypted = await tshark(['-r', file, '-q', '-z', `follow,tls,ascii,${stream}`]);
  t.match(decrypted, /<key>Request<\/key>\s*\.*<string>StopSession<\/string>/, 'decrypted: the StopSession request, sent after StartSession');
  t.ok((await countMatching(file, 'tls.app_data && tcp.port == 62078')) >= 2, 'application data both ways');

  const summary = new PcapngSummary();
  summary.push(readFileSync(file));
  t.ok(summary.counts.secrets >= 1, `the key log is in the file (${summary.counts.secrets} Decryption Secrets Blocks)`);
  t.equal(summary.counts.dropped, 0, 'the statistics written at the stop report no drops');
  const control = await tshark(['-r', file, '-Y', '!tcp', '-T', 'fields', '-e', 'frame.comment']);
  t.match(control, /VERSION 2\.0/, 'captured from start-up: the mux VERSION, commented');
  t.match(control, /SETUP log level 7/, 'and SETUP');
});

t.test('a capture reader that stops reading costs drops, counted, never the data path', { skip }, async (t) => {
  const setup = await startDaemon(t, { sims: 1 });
  const file = join(tempDir(t), 'slow.pcapng');
  const socket = await new UsbmuxClient({ address: setup.address, timeoutMs: SLOW }).capture({ ringBytes: 64 << 10 });
  socket.pause();  // the reader stops: the kernel's buffer fills, then the daemon's 64 KiB ring
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [phone] = await client.listDevices();
  const echo = await client.connect(phone.deviceId, ECHO_PORT);
  const sent = randomBytes(8 << 20);
  echo.write(sent);
  const back = await readExactly(echo, sent.length);
  echo.destroy();
  t.ok(back.equals(sent), '8 MiB went through the echo while the capture was stuck');
  const written = pipeline(socket, createWriteStream(file));
  socket.end();
  await written;
  const summary = new PcapngSummary();
  summary.push(readFileSync(file));
  t.ok((summary.counts.dropped ?? 0) > 0, `the statistics count what the full ring dropped (${summary.counts.dropped})`);
  t.equal(summary.counts.broken, undefined, 'the file is still well-formed');
  const isb = await tshark(['-r', file, '-q', '-z', 'io,phs']);
  t.match(isb, /tcp/, 'tshark reads what was kept');
});

const root = process.getuid?.() === 0;
t.test('--capture onto a disk that fills: the capture stops, the file is cut to whole blocks, the daemon serves on', { skip: skip || (!root && 'needs root to mount a small tmpfs') }, async (t) => {
  const dir = tempDir(t);
  const disk = join(dir, 'disk');
  mkdirSync(disk);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', disk]);
  t.teardown(() => execFileSync('umount', ['-l', disk]));
  const file = join(disk, 'full.pcapng');
  const logFile = join(dir, 'daemon.log');
  const setup = await startDaemon(t, { sims: 1, capture: file, log: new Logger({ file: logFile, verbosity: 3 }) });
  const client = new UsbmuxClient({ address: setup.address, timeoutMs: SLOW });
  const [phone] = await client.listDevices();
  const echo = await client.connect(phone.deviceId, ECHO_PORT);
  const sent = randomBytes(2 << 20);
  echo.write(sent);
  t.ok((await readExactly(echo, sent.length)).equals(sent), 'the echo works while the disk fills');
  echo.destroy();
  const line = await waitUntil(() => readFileSync(logFile, 'utf8').split('\n').find((l) => l.includes(`capture to ${file} ended`)), 'the capture to end');
  t.match(line, /\[error\].*writing the capture failed: No space left on device/, 'one log line says the disk is full');
  const size = statSync(file).size;
  t.ok(size > 0 && size <= 512 << 10, `the file keeps what fitted (${size} bytes)`);
  const summary = new PcapngSummary();
  summary.push(readFileSync(file));
  t.equal(summary.counts.broken, undefined, 'and ends on a whole block');
  await t.resolves(tshark(['-r', file, '-q']), 'tshark reads it without complaint');
  t.equal((await client.listDevices()).length, 1, 'the daemon serves on');
});
