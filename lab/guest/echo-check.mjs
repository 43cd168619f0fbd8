// Moves N MiB of random bytes through a TCP echo service and compares the
// SHA-256 of what went out with what came back:
//   node echo-check.mjs PORT MIB
// Prints one JSON line; exits 0 only if every byte came back in order.
//
// At most ECHO_INFLIGHT bytes (1 MiB) are out at once. iproxy (libusbmuxd
// 2.0.2) relays both directions in one thread with sends that give up after
// 10 s and then drop the rest of their 32 KiB buffer: a writer that floods an
// echo fills every buffer on the loop, iproxy blocks on one direction while
// the other backs up, and a chunk is lost (seen in this lab: usbmuxd had
// acknowledged every byte to the phone, all socket queues were empty, 32768
// bytes never arrived). A bounded writer keeps every hop flowing. The mux has
// no half-close either: we read everything back before closing.
import { execSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { connect } from 'node:net';

const port = Number(process.argv[2]);
const total = Number(process.argv[3]) * 1024 * 1024;
if (!(port > 0 && port < 65536) || !(total > 0)) {
  process.stderr.write('usage: echo-check.mjs PORT MIB\n');
  process.exit(2);
}
const inflight = Number(process.env.ECHO_INFLIGHT ?? 1 << 20);
const chunk = 64 * 1024;
// Random bytes are dear under TCG: one 4 MiB pool, read at a moving offset,
// each chunk stamped with its index so no two chunks are alike.
const pool = randomFillSync(Buffer.allocUnsafe(4 << 20));
const sent = createHash('sha256');
const received = createHash('sha256');
let written = 0;
let got = 0;
let index = 0;
let waiting = false;
const t0 = process.hrtime.bigint();
const sock = connect({ port, host: '127.0.0.1', noDelay: true });

const fail = (why) => {
  // ECHO_ON_STALL: a shell command run before our sockets close, to see
  // where the bytes sit (ss, /proc/PID/wchan...) while the stall lasts.
  if (process.env.ECHO_ON_STALL) {
    try {
      execSync(process.env.ECHO_ON_STALL, { stdio: 'inherit', timeout: 60000 });
    } catch {
      // diagnostics only
    }
  }
  process.stdout.write(`${JSON.stringify({ ok: false, error: why, written, received: got })}\n`);
  process.exit(1);
};
const timer = setTimeout(() => fail('timed out'), Number(process.env.ECHO_TIMEOUT_MS ?? 240000));
// Slow is not stuck: fail early, and say so, when nothing moves for a while.
let lastProgress = Date.now();
const stallMs = Number(process.env.ECHO_STALL_MS ?? 30000);
const watchdog = setInterval(() => {
  if (Date.now() - lastProgress > stallMs) fail(`stalled: nothing came back for ${stallMs / 1000} s`);
}, 1000);

function nextChunk() {
  const n = Math.min(chunk, total - written);
  const at = (index * 40961) % (pool.length - chunk);
  const buf = Buffer.from(pool.subarray(at, at + n));
  if (n >= 8) buf.writeBigUInt64BE(BigInt(index), 0);
  index++;
  return buf;
}

function pump() {
  waiting = false;
  while (written < total) {
    if (written - got >= inflight) return;  // resumed by 'data'
    const buf = nextChunk();
    sent.update(buf);
    written += buf.length;
    if (!sock.write(buf)) {
      waiting = true;
      sock.once('drain', pump);
      return;
    }
  }
}

sock.on('error', (e) => fail(e.message));
sock.on('close', () => {
  if (got < total) fail('closed early');
});
sock.on('connect', pump);
sock.on('data', (d) => {
  lastProgress = Date.now();
  received.update(d);
  got += d.length;
  if (got > total) fail('more bytes came back than were sent');
  if (got === total) {
    clearTimeout(timer);
    clearInterval(watchdog);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const a = sent.digest('hex');
    const b = received.digest('hex');
    const mib = total / 1048576;
    process.stdout.write(`${JSON.stringify({ ok: a === b, mib, seconds: +seconds.toFixed(2), mibPerSecond: +(mib / seconds).toFixed(1), sha256Sent: a, sha256Received: b })}\n`);
    sock.destroy();
    process.exit(a === b ? 0 : 1);
  }
  if (!waiting) pump();
});
