// The lab's integrity run: node integrity.mjs UDID[,UDID...] MIB CONNS moves
// MIB MiB per phone through CONNS connections to each phone on
// /var/run/usbmuxd, half to the sim's sink (device port 9) and half from its
// source (port 19), each hashed at both ends (src/bench/verified.ts). One
// JSON line per connection, then a summary line
// {"ok":...,"bytes":...,"transfers":...,"seconds":...}; exit 0 only if every
// digest matched and every byte arrived.
//
// INTEGRITY_UNTIL=FILE (the benchmark's churn check): each connection's
// transfer is repeated, each time on a fresh Connect, until FILE exists, so
// the streams outlast whatever is done to another phone meanwhile. A line
// {"streaming":true} says when every first Connect has succeeded; a stream
// stops at its first failure.
import { existsSync } from 'node:fs';

const dist = new URL('../../dist/src/', import.meta.url).href;
const { UsbmuxClient } = await import(`${dist}client/index.js`);
const { connectRequest, muxConnect } = await import(`${dist}bench/connect-rate.js`);
const { downloadVerified, uploadVerified } = await import(`${dist}bench/verified.js`);

const [udidList, mibText, connsText] = process.argv.slice(2);
const MiB = 1 << 20;
const udids = (udidList ?? '').split(',').filter(Boolean);
const conns = Number(connsText ?? 4);
const each = Math.floor(Number(mibText) / conns) * MiB;
const until = process.env.INTEGRITY_UNTIL;
if (udids.length === 0 || !(each >= MiB)) {
  process.stderr.write('usage: integrity.mjs UDID[,UDID...] MIB CONNS (at least 1 MiB per connection)\n');
  process.exit(1);
}
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const address = { kind: 'unix', path: '/var/run/usbmuxd' };
const listed = await new UsbmuxClient({ timeoutMs: 10_000 }).listDevices();
const devices = udids.map((udid) => listed.find((d) => d.serialNumber === udid));
const missing = udids.filter((_, i) => !devices[i]);
if (missing.length) {
  say({ ok: false, error: `not listed: ${missing.join(', ')}` });
  process.exit(1);
}

let connected = 0;
const total = devices.length * conns;
const started = performance.now();

/** One connection's transfers (one, or until the stop file exists); resolves with the verified bytes, or 0 on any failure. */
async function stream(device, udid, i, streamId) {
  const up = i % 2 === 0;
  const direction = up ? 'up' : 'down';
  let transfers = 0;
  let bytes = 0;
  let last;
  try {
    do {
      const socket = await muxConnect(address, connectRequest(device.deviceId, up ? 9 : 19), true);
      if (transfers === 0 && ++connected === total && until) say({ streaming: true, connections: total });
      const r = up ? await uploadVerified(socket, each, streamId) : await downloadVerified(socket, each);
      socket.destroy();
      if (r.local !== r.remote || r.bytes !== each) {
        say({ udid, conn: i, direction, transfer: transfers + 1, bytes: r.bytes, local: r.local, remote: r.remote, ok: false });
        return { bytes: 0, transfers };
      }
      transfers++;
      bytes += r.bytes;
      last = r;
    } while (until && !existsSync(until));
    const mbps = +(bytes / 1e3 / (performance.now() - started)).toFixed(1);
    // the last transfer's digests, both ends (equal, or we would have stopped)
    say({ udid, conn: i, direction, transfers, bytes, mbps, local: last.local, remote: last.remote, ok: true });
    return { bytes, transfers };
  } catch (err) {
    say({ udid, conn: i, direction, transfer: transfers + 1, ok: false, error: err.message });
    return { bytes: 0, transfers };
  }
}

const results = await Promise.all(
  devices.flatMap((device, d) => Array.from({ length: conns }, (_, i) => stream(device, udids[d], i, d * conns + i))),
);
const ok = results.every((r) => r.bytes > 0);
const bytes = results.reduce((a, r) => a + r.bytes, 0);
const transfers = results.reduce((a, r) => a + r.transfers, 0);
const seconds = (performance.now() - started) / 1000;
say({ ok, bytes, transfers, seconds: +seconds.toFixed(1), mbps: +(bytes / 1e6 / seconds).toFixed(1) });
process.exit(ok ? 0 : 1);
