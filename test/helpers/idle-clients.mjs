// Child process for the many-idle-clients test: opens COUNT connections to a
// Unix socket (a few at a time, retrying while the listen backlog is full),
// optionally sends a partial header on every PARTIAL_EVERY-th one, and then
// just holds them. Lines on stdin: "status" prints a JSON status line,
// "exit" closes everything and exits. Kept in its own process so the test
// process (which runs the daemon) spends its file descriptors on the
// daemon's side only.
import net from 'node:net';
import { createInterface } from 'node:readline';

const [path, countText, partialText] = process.argv.slice(2);
const count = Number(countText);
const partialEvery = Number(partialText ?? 0);
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
      if (partialEvery > 0 && index % partialEvery === 0) {
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
