// Moves N MiB of random bytes through a TCP echo service and compares the
// SHA-256 of what went out with what came back:
//   node echo-check.mjs PORT MIB
// Prints one JSON line; exits 0 only if every byte came back in order.
// (The mux has no half-close: closing our side early would reset the
// connection with echoed bytes still in flight, so we read all of them first.)
import { createHash, randomFillSync } from 'node:crypto';
import { connect } from 'node:net';

const port = Number(process.argv[2]);
const total = Number(process.argv[3]) * 1024 * 1024;
if (!(port > 0 && port < 65536) || !(total > 0)) {
  process.stderr.write('usage: echo-check.mjs PORT MIB\n');
  process.exit(2);
}
const sent = createHash('sha256');
const received = createHash('sha256');
const chunk = 256 * 1024;
let written = 0;
let got = 0;
const t0 = process.hrtime.bigint();
const sock = connect({ port, host: '127.0.0.1', noDelay: true });
const fail = (why) => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: why, written, received: got })}\n`);
  process.exit(1);
};
const timer = setTimeout(() => fail('timed out'), Number(process.env.ECHO_TIMEOUT_MS ?? 240000));
sock.on('error', (e) => fail(e.message));
sock.on('close', () => { if (got < total) fail('closed early'); });
function pump() {
  while (written < total) {
    const buf = randomFillSync(Buffer.allocUnsafe(Math.min(chunk, total - written)));
    sent.update(buf);
    written += buf.length;
    if (!sock.write(buf)) {
      sock.once('drain', pump);
      return;
    }
  }
}
sock.on('connect', pump);
sock.on('data', (d) => {
  received.update(d);
  got += d.length;
  if (got > total) fail('more bytes came back than were sent');
  if (got === total) {
    clearTimeout(timer);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const a = sent.digest('hex');
    const b = received.digest('hex');
    const mib = total / 1048576;
    process.stdout.write(`${JSON.stringify({ ok: a === b, mib, seconds: +seconds.toFixed(2), mibPerSecond: +(mib / seconds).toFixed(1), sha256Sent: a, sha256Received: b })}\n`);
    sock.destroy();
    process.exit(a === b ? 0 : 1);
  }
});
