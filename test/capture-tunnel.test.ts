// `tsmuxd capture -w FILE` as a user runs it, against tsmuxd with a
// supervised iOS 17.4 phone: a tunnel started and RSD asked through it
// while the capture runs, then Ctrl-C. The tunnel's interface opens as
// IPv6/TCP (link type 229) and tshark follows the RSD HTTP/2 stream; the
// tunnel's own TLS (native OpenSSL) decrypts from the secrets in the file,
// the CDTunnel handshake inside it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import type { TunnelDescription } from '../src/protocol/tunnel-messages.js';
import { assertBuilt, killOnExit, MAIN_JS, OutputWatch, runCli, tempDir, waitUntil } from './helpers/daemon-process.js';
import { startTunnelWorld } from './helpers/tunnel-fixture.js';
import { countMatching, followRaw, tshark, tsharkMissing } from './helpers/tshark.js';

assertBuilt();
const skip = tsharkMissing();

t.test('a tunnel in the capture: IPv6/TCP, the RSD HTTP/2 stream followed, its TLS decrypted', { skip }, async (t) => {
  const world = await startTunnelWorld(t, { sims: 1 });
  const phone = world.phones[0]!;
  const cli = (...args: string[]) => runCli([...args, '-S', world.socketPath], { timeoutMs: 60_000 });
  const file = join(tempDir(t), 'tunnel.pcapng');
  const capture = killOnExit(spawn(process.execPath, [MAIN_JS, 'capture', '-w', file, '-S', world.socketPath], { stdio: ['ignore', 'ignore', 'pipe'] }));
  const stderr = new OutputWatch(capture.stderr!);
  const exited = once(capture, 'exit');
  // The section header is written as the capture starts.
  await waitUntil(() => statSync(file, { throwIfNoEntry: false })?.size, 10_000, 'the capture to start');

  const started = await cli('tunnel', 'start', phone.udid, '--json');
  t.equal(started.code, 0, `tunnel start (stderr: ${started.stderr})`);
  const tunnel = JSON.parse(started.stdout) as TunnelDescription;
  const rsd = await cli('rsd', '--udid', phone.udid, '--json');
  t.equal(rsd.code, 0, `rsd through the tunnel (stderr: ${rsd.stderr})`);

  capture.kill('SIGINT');
  const [code] = (await exited) as [number | null];
  t.equal(code, 0, `the capture exits 0 on Ctrl-C (stderr: ${stderr.text})`);
  t.match(stderr.text, /tsmuxd capture: \d+ packets, [1-9]\d* TLS secrets, .*; 0 dropped/, 'and says what it wrote and that nothing was dropped');

  const rsdPort = tunnel.serverRsdPort;
  const inTunnel = `ipv6.dst == ${tunnel.serverAddress} || ipv6.src == ${tunnel.serverAddress}`;
  t.ok((await countMatching(file, `(${inTunnel}) && tcp.port == ${rsdPort}`)) > 4, "the tunnel's packets are IPv6/TCP to the phone's RSD port");
  const linkTypes = await tshark(['-r', file, '-Y', `tcp.port == ${rsdPort}`, '-T', 'fields', '-e', 'frame.interface_name', '-e', 'frame.encap_type']);
  // 130 is WTAP_ENCAP_RAW_IP6: what Wireshark makes of link type 229.
  t.match(linkTypes, /^tunnel-\d+\t130\b/m, 'on a tunnel interface of link type 229 (raw IPv6)');

  const streams = (await tshark(['-r', file, '-Y', `tcp.dstport == ${rsdPort} && tcp.flags.syn == 1 && tcp.flags.ack == 0`, '-T', 'fields', '-e', 'tcp.stream'])).trim().split('\n');
  const { fromOpener, toOpener } = await followRaw(file, 'tcp', Number(streams[0]));
  t.ok(fromOpener.subarray(0, 24).equals(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'the RSD stream opens with the HTTP/2 preface');
  t.ok(toOpener.includes(Buffer.from(phone.udid)), "and the phone's answer carries its UDID");
  const asHttp2 = ['-d', `tcp.port==${rsdPort},http2`];
  t.ok((await countMatching(file, 'http2.type == 0', asHttp2)) >= 2, 'as HTTP/2 (decode-as the RSD port): DATA frames both ways');

  // Two TLS sessions: the tunnel start's lockdown session (node's TLS), then CoreDeviceProxy (native).
  const hellos = (await tshark(['-r', file, '-Y', 'tls.handshake.type == 1', '-T', 'fields', '-e', 'tcp.stream'])).trim().split('\n');
  t.equal(hellos.length, 2, 'two TLS sessions, each found without a decode-as');
  const sessions = await Promise.all(hellos.map((s) => tshark(['-r', file, '-q', '-z', `follow,tls,ascii,${s}`])));
  t.match(sessions[0], /<string>StartService<\/string>/, "the tunnel start's lockdown session decrypts: StartService, after StartSession");
  t.match(sessions[1], /CDTunnel.*clientHandshakeRequest/s, "the tunnel's own TLS decrypts: the CDTunnel request inside it");
});
