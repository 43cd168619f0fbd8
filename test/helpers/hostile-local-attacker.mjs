// Child process for the hostile-local tests: COUNT clients of one usbmuxd
// socket, each running one attack, in a process of its own so that the test
// process (which times a second client and reads the daemon's RSS) is not
// the one busy writing. Its one argument is a JSON object:
//   path        the daemon's socket
//   mode        "connect-flood": a binary Connect to deviceId:port, then
//                 garbage (0xAB) as fast as the socket takes it;
//               "pipeline": `request` (base64, one whole request frame)
//                 repeated, never reading a reply;
//               "slow-header": the bytes of `request`, one per second;
//               "close-mid-reply": `request`, then a close before the
//                 reply or after its first bytes, over and over (one
//                 client at a time per slot)
//   count       clients at once
//   bytesEach   what each client attempts to write (connect-flood, pipeline)
//   seconds     how long the attack runs at most
// It prints one JSON line when every client is connected ({"started":...})
// and one when the attack is over ({"done":...}) with, summed over clients:
// attempted and accepted bytes (accepted: taken by the kernel), connect
// errors (`errors`) and errors on connected sockets (`socketErrors`: EPIPE
// and ECONNRESET once the daemon closes one), the Results
// each Connect got, the ms from the Connect to its Result, and how many
// clients the daemon closed.
import net from 'node:net';

const options = JSON.parse(process.argv[2]);
const { path, mode, count, deviceId = 0, port = 0, bytesEach = 0, seconds = 30 } = options;
const request = options.request ? Buffer.from(options.request, 'base64') : Buffer.alloc(0);
const deadline = Date.now() + seconds * 1000;
const CONCURRENCY = 64;

const totals = { attempted: 0, accepted: 0, closedByDaemon: 0, errors: {}, socketErrors: {}, results: {}, resultMs: [], cycles: 0 };

function connectRequest(tag) {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(24, 0);
  b.writeUInt32LE(0, 4);
  b.writeUInt32LE(2, 8);
  b.writeUInt32LE(tag, 12);
  b.writeUInt32LE(deviceId, 16);
  b.writeUInt16BE(port, 20);
  return b;
}

// One 64 KiB block, written again and again: the attacker itself holds no
// more, and what the kernel took is counted to within one block.
const garbage = Buffer.alloc(64 << 10, 0xab);
function repeated(frame) {
  const n = Math.max(1, Math.floor((64 << 10) / frame.length));
  return Buffer.concat(Array.from({ length: n }, () => frame));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A full listen backlog (EAGAIN on a Unix socket) is retried, as a patient
// client would: the attack is on the daemon, not on the kernel's queue.
async function open() {
  for (let attempt = 0; ; attempt++) {
    const result = await new Promise((resolve) => {
      const s = net.connect(path);
      s.once('connect', () => resolve(s));
      s.once('error', (err) => resolve(err));
    });
    if (!(result instanceof Error)) return result;
    if (result.code !== 'EAGAIN' || Date.now() > deadline) {
      totals.errors[result.code] = (totals.errors[result.code] ?? 0) + 1;
      return null;
    }
    await sleep(Math.min(100, 10 * (attempt + 1)));
  }
}

/** Resolves on 'drain', 'close' or the deadline, whichever comes first. */
function writable(s) {
  return new Promise((resolve) => {
    const left = deadline - Date.now();
    if (left <= 0 || s.destroyed) return resolve();
    const done = () => {
      clearTimeout(timer);
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, left);
    s.on('drain', done);
    s.on('close', done);
  });
}

/**
 * Writes `block` until `bytes` are attempted, the socket closes or the
 * deadline passes. A write's callback runs once the kernel has taken all of
 * it, so `accepted` counts what really left this process.
 */
async function flood(s, block, bytes) {
  let attempted = 0;
  while (attempted < bytes && !s.destroyed && Date.now() < deadline) {
    const n = Math.min(block.length, bytes - attempted);
    attempted += n;
    const ok = s.write(n === block.length ? block : block.subarray(0, n), (err) => {
      if (!err) totals.accepted += n;
    });
    if (!ok) await writable(s);
  }
  totals.attempted += attempted;
}

function watchClose(s) {
  return new Promise((resolve) => {
    s.once('close', () => {
      if (Date.now() < deadline) totals.closedByDaemon++;
      resolve();
    });
  });
}

async function connectFlood(s) {
  const sent = Date.now();
  const closed = watchClose(s);
  let reply = Buffer.alloc(0);
  s.on('data', (d) => {
    if (reply.length >= 20) return;
    reply = Buffer.concat([reply, d]);
    if (reply.length >= 20) {
      const result = reply.readUInt32LE(16);
      totals.results[result] = (totals.results[result] ?? 0) + 1;
      totals.resultMs.push(Date.now() - sent);
    }
  });
  s.write(connectRequest(1));
  await flood(s, garbage, bytesEach);
  // Wait for the Result (or the close), not past the deadline.
  await Promise.race([closed, sleep(Math.max(0, deadline - Date.now()))]);
}

async function pipeline(s) {
  const closed = watchClose(s);
  s.pause();  // never read a reply
  await flood(s, repeated(request), bytesEach);
  await Promise.race([closed, sleep(Math.max(0, deadline - Date.now()))]);
}

async function slowHeader(s) {
  const closed = watchClose(s);
  s.resume();
  for (let i = 0; i < request.length && Date.now() < deadline && !s.destroyed; i++) {
    s.write(request.subarray(i, i + 1));
    totals.accepted++;
    await sleep(1000);
  }
  await Promise.race([closed, sleep(Math.max(0, deadline - Date.now()))]);
}

// Paced by the daemon: every other cycle waits for the first bytes of the
// reply and then leaves, so at most one connection per slot is in flight (a
// flood of connections is the half-open test's business, not this one's).
async function closeMidReply() {
  for (let cycle = 0; Date.now() < deadline; cycle++) {
    const s = await open();
    if (!s) continue;
    s.on('error', () => {});
    s.write(request);
    if (cycle % 2) {
      await Promise.race([new Promise((r) => s.once('data', r)), sleep(1000)]);
    } else {
      await sleep(1);
    }
    s.destroy();
    totals.cycles++;
  }
}

const attacks = { 'connect-flood': connectFlood, pipeline, 'slow-header': slowHeader };

async function main() {
  if (mode === 'close-mid-reply') {
    console.log(JSON.stringify({ started: { clients: count } }));
    await Promise.all(Array.from({ length: count }, () => closeMidReply()));
  } else {
    const sockets = [];
    for (let i = 0; i < count; i += CONCURRENCY) {
      const batch = await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count - i) }, () => open()));
      for (const s of batch) if (s) sockets.push(s);
    }
    for (const s of sockets) s.on('error', (err) => (totals.socketErrors[err.code] = (totals.socketErrors[err.code] ?? 0) + 1));
    console.log(JSON.stringify({ started: { clients: sockets.length } }));
    await Promise.all(sockets.map((s) => attacks[mode](s)));
    for (const s of sockets) s.destroy();
  }
  const ms = totals.resultMs.sort((a, b) => a - b);
  console.log(JSON.stringify({ done: { ...totals, resultMs: undefined, resultMsMin: ms[0], resultMsMax: ms[ms.length - 1] } }));
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
