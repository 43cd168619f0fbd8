// The lab's tunnel check: node tunnel-check.mjs UDID MIB brings up the
// phone's CoreDeviceProxy tunnel through the daemon on /var/run/usbmuxd
// (TunnelStart), then moves MIB MiB to the sim's sink (tunnel port 9) and
// MIB MiB from its source (port 19) through TunnelConnect, each hashed at
// both ends (src/bench/verified.ts), and stops the tunnel. Over real libusb
// that is the whole path: lockdown, StartService, TLS, the CDTunnel
// handshake, lwIP on both sides. One JSON line per direction, then a
// summary; exit 0 only if both digests matched.
const dist = new URL('../../dist/src/', import.meta.url).href;
const { UsbmuxClient } = await import(`${dist}client/index.js`);
const { downloadVerified, uploadVerified } = await import(`${dist}bench/verified.js`);

const [udid, mibText] = process.argv.slice(2);
const bytes = Number(mibText) * (1 << 20);
if (!udid || !(bytes > 0)) {
  process.stderr.write('usage: tunnel-check.mjs UDID MIB\n');
  process.exit(1);
}
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const client = new UsbmuxClient({ timeoutMs: 30_000 });
let ok = true;
try {
  const started = performance.now();
  const tunnel = await client.startTunnel(udid);
  say({ tunnel: { ...tunnel }, startMs: Math.round(performance.now() - started) });
  for (const [direction, port] of [['up', 9], ['down', 19]]) {
    const socket = await client.tunnelConnect(udid, port);
    const r = direction === 'up' ? await uploadVerified(socket, bytes, 0) : await downloadVerified(socket, bytes);
    socket.destroy();
    const good = r.local === r.remote && r.bytes === bytes;
    ok &&= good;
    say({ direction, bytes: r.bytes, mbps: +(r.bytes / 1e3 / r.ms).toFixed(1), local: r.local, remote: r.remote, ok: good });
  }
  await client.stopTunnel(udid);
} catch (err) {
  ok = false;
  say({ ok: false, error: err.message });
}
say({ ok });
process.exit(ok ? 0 : 1);
