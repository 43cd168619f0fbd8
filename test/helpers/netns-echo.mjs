// Run inside a network namespace (`ip netns exec NS node netns-echo.mjs HOST
// PORT BYTES`): connects to HOST:PORT (retrying for 10 s while a proxy
// starts), sends BYTES random bytes with at most 1 MiB in flight, reads the
// echo, and prints one JSON line: bytes back, both SHA-256s, milliseconds.
import { createHash, randomFillSync } from 'node:crypto';
import net from 'node:net';

const [host, portText, totalText] = process.argv.slice(2);
const port = Number(portText);
const total = Number(totalText);
const window = 1024 * 1024;
const chunk = 128 * 1024;

async function connect() {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await new Promise((resolve, reject) => {
        const s = net.connect(port, host, () => resolve(s));
        s.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const socket = await connect();
socket.setNoDelay(true);
const sentHash = createHash('sha256');
const gotHash = createHash('sha256');
let sent = 0;
let received = 0;
let blocked = false;
const started = process.hrtime.bigint();
const timer = setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ error: `stalled: sent ${sent}, received ${received}` })}\n`);
  process.exit(1);
}, 120_000);
const fill = () => {
  while (!blocked && sent < total && sent - received < window) {
    const b = randomFillSync(Buffer.allocUnsafe(Math.min(chunk, total - sent)));
    sentHash.update(b);
    sent += b.length;
    if (!socket.write(b)) {
      blocked = true;
      socket.once('drain', () => {
        blocked = false;
        fill();
      });
    }
  }
};
socket.on('data', (d) => {
  gotHash.update(d);
  received += d.length;
  if (received >= total) {
    clearTimeout(timer);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    process.stdout.write(`${JSON.stringify({ bytes: received, sent: sentHash.digest('hex'), received: gotHash.digest('hex'), ms })}\n`);
    socket.destroy();
  } else {
    fill();
  }
});
socket.on('error', (err) => {
  process.stdout.write(`${JSON.stringify({ error: err.message, received })}\n`);
  process.exit(1);
});
fill();
