// The capture tap (docs/capture.md), read back by Debian's tshark: a mux
// connection is a TCP stream that Follow reassembles byte for byte in both
// directions, with valid checksums; the preflight's lockdown session
// decrypts from the secrets in the file, a plist after StartSession
// included; the control packets and the statistics at the end are there.
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';

import t from 'tap';

import { UsbmuxClient } from '../src/client/usbmux-client.js';
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
