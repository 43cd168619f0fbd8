// Start-up as a client sees it: started before the daemon, this probe tries
// the usbmuxd socket every 10 ms; once it connects it sends a plist Listen
// and waits for N Attached messages. It prints "ready" when it is polling,
// then one JSON line: seconds from T0_MS (the daemon's start, epoch ms) to
// the socket accepting and to the Nth phone Attached, or {"error":...}.
//   node start-probe.mjs SOCKET T0_FILE [N]   (T0_FILE: written by the caller
//   with the epoch ms just before it starts the daemon)
// Built-in modules only, and nothing parsed: its own start must not compete
// with the daemon's.
import { readFileSync } from 'node:fs';
import net from 'node:net';

const [socketPath, t0File, countText] = process.argv.slice(2);
const want = Number(countText ?? 1);
const say = (o) => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
  process.exit(o.error ? 1 : 0);
};
const t0 = () => Number(readFileSync(t0File, 'utf8'));
const seconds = (ms) => Math.round((ms - t0()) / 10) / 100;
const body = Buffer.from(
  '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>MessageType</key><string>Listen</string>' +
    '<key>ClientVersionString</key><string>start-probe</string><key>ProgName</key><string>start-probe</string></dict></plist>\n',
);
const header = Buffer.alloc(16);
header.writeUInt32LE(16 + body.length, 0);
header.writeUInt32LE(1, 4);
header.writeUInt32LE(8, 8);
header.writeUInt32LE(1, 12);

setTimeout(() => say({ error: 'no listing within 120 s' }), 120_000).unref();
process.stdout.write('ready\n');

function attempt() {
  const s = net.connect(socketPath);
  s.once('error', () => setTimeout(attempt, 10));
  s.once('connect', () => {
    const socketAt = Date.now();
    let text = '';
    s.write(Buffer.concat([header, body]));
    s.on('data', (d) => {
      text += d.toString('latin1');
      const attached = text.split('<string>Attached</string>').length - 1;
      if (attached >= want) say({ socketSec: seconds(socketAt), listedSec: seconds(Date.now()) });
    });
    s.once('close', () => say({ error: 'the daemon closed the Listen connection' }));
  });
}
attempt();
