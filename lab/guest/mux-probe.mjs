// The daemon as a usbmux client sees it, for tsmuxd's unplug checks, through
// the project's own client library on /var/run/usbmuxd:
//   node mux-probe.mjs devices          one JSON line: [{deviceId, serial}]
//   node mux-probe.mjs idle UDID PORT   echo 1 MiB, then wait idle for the end
//   node mux-probe.mjs stream UDID PORT write and read without pause until the end
// `idle` and `stream` print {"flowing":true} once echoed bytes came back, then
// one JSON line when the daemon ends the connection: {"end":"eof"} for a
// clean end of file, {"end":"error","code":...} otherwise. They exit 0 when
// the connection ended (after flowing), 1 on anything else, 2 on a timeout.
import { randomFillSync } from 'node:crypto';

const { UsbmuxClient } = await import(new URL('../../dist/src/client/index.js', import.meta.url).href);

const [mode, udid, portText] = process.argv.slice(2);
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const client = new UsbmuxClient({ timeoutMs: 10_000 });

if (mode === 'devices') {
  const list = await client.listDevices();
  say(list.map((d) => ({ deviceId: d.deviceId, serial: d.serialNumber })));
  process.exit(0);
}
if (mode !== 'idle' && mode !== 'stream') {
  process.stderr.write('usage: mux-probe.mjs devices | idle UDID PORT | stream UDID PORT\n');
  process.exit(1);
}

const timeout = setTimeout(() => {
  say({ end: 'timeout', received });
  process.exit(2);
}, Number(process.env.PROBE_TIMEOUT_MS ?? 120_000));
let received = 0;
let flowing = false;
const sock = await client.connect(udid, Number(portText));
const chunk = randomFillSync(Buffer.alloc(64 * 1024));
let written = 0;

const finish = (how) => {
  clearTimeout(timeout);
  say({ ...how, received, written, flowing });
  process.exit(flowing ? 0 : 1);
};
sock.on('data', (d) => {
  received += d.length;
  if (!flowing && received >= 1 << 20) {
    flowing = true;
    say({ flowing: true });
  }
});
sock.on('end', () => finish({ end: 'eof' }));
sock.on('error', (e) => finish({ end: 'error', code: e.code ?? e.message }));

if (mode === 'idle') {
  // 1 MiB out, all of it back; then silence, so nothing is unread when the
  // daemon closes and the end is a plain EOF.
  for (let i = 0; i < 16; i++) sock.write(chunk);
  written = 16 * chunk.length;
} else {
  const pump = () => {
    while (sock.writable) {
      written += chunk.length;
      if (!sock.write(chunk)) return;
    }
  };
  sock.on('drain', pump);
  pump();
}
