// Child process for the many-idle-clients tests: opens COUNT connections to a
// Unix socket (a few at a time, retrying while the listen backlog is full),
// optionally sends a partial header on every PARTIAL_EVERY-th one, and then
// just holds them. With MODE "half-close" each one instead sends a partial
// header, a whole Listen or (every 50th, when DEVICE_ID is given) a whole
// Connect to port 7, then shuts its writing side (shutdown(SHUT_WR)) and
// waits for the daemon to close it. Lines on stdin: "status" prints a JSON
// status line, "exit" closes everything and exits. Kept in its own process so
// the test process spends its file descriptors on the daemon's side only.
import net from 'node:net';
import { createInterface } from 'node:readline';

const [path, countText, partialText, mode = 'hold', deviceIdText] = process.argv.slice(2);
const count = Number(countText);
const partialEvery = Number(partialText ?? 0);
const deviceId = deviceIdText === undefined ? undefined : Number(deviceIdText);

function header(length, version, message, tag) {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(length, 0);
  b.writeUInt32LE(version, 4);
  b.writeUInt32LE(message, 8);
  b.writeUInt32LE(tag, 12);
  return b;
}

/** What a half-closing client sends before its shutdown. */
function lastWords(index) {
  if (deviceId !== undefined && index % 50 === 0) {
    const body = Buffer.alloc(8);
    body.writeUInt32LE(deviceId, 0);
    body.writeUInt16BE(7, 4); // the port, in network order as usbmuxd wants
    return Buffer.concat([header(24, 0, 2, 1), body]);
  }
  if (index % 2) return header(16, 0, 3, 1).subarray(0, 10);
  return header(16, 0, 3, 1); // a whole binary Listen
}
const CONCURRENCY = 64;

const sockets = [];
let closed = 0;
let received = 0;
let failed = 0;
const errors = {};

function openOne(index, attempt = 0) {
  return new Promise((resolve) => {
    const s = net.connect(path);
    let connected = false;
    s.once('connect', () => {
      connected = true;
      sockets.push(s);
      if (mode === 'half-close') {
        s.end(lastWords(index));
      } else if (partialEvery > 0 && index % partialEvery === 0) {
        // Ten bytes of a Listen header: the daemon must wait for the rest.
        s.write(Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0, 0x03, 0]));
      }
      s.on('data', (d) => {
        received += d.length;
      });
      s.on('close', () => {
        closed++;
      });
      resolve(true);
    });
    s.on('error', (err) => {
      if (connected) return;
      s.destroy();
      if ((err.code === 'EAGAIN' || err.code === 'ECONNREFUSED') && attempt < 200) {
        setTimeout(() => openOne(index, attempt + 1).then(resolve), 5 + attempt);
        return;
      }
      errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1;
      failed++;
      resolve(false);
    });
  });
}

async function main() {
  const started = Date.now();
  let next = 0;
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (next < count) await openOne(next++);
  });
  await Promise.all(workers);
  process.stdout.write(`${JSON.stringify({ opened: sockets.length, failed, errors, ms: Date.now() - started })}\n`);
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === 'status') {
    process.stdout.write(`${JSON.stringify({ open: sockets.length - closed, closed, received })}\n`);
  } else if (line === 'exit') {
    for (const s of sockets) s.destroy();
    process.exit(0);
  }
});
lines.on('close', () => process.exit(0));

main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ fatal: String(err) })}\n`);
  process.exit(1);
});
