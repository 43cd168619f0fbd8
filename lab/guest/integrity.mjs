// The lab's integrity run: node integrity.mjs UDID MIB CONNS moves MIB MiB in
// all through CONNS connections on /var/run/usbmuxd, half to the sim's sink
// (device port 9) and half from its source (port 19), each hashed at both
// ends (src/bench/verified.ts). One JSON line per connection, then a summary
// line {"ok":...,"bytes":...,"seconds":...}; exit 0 only if every digest
// matched and every byte arrived.
const dist = new URL('../../dist/src/', import.meta.url).href;
const { UsbmuxClient } = await import(`${dist}client/index.js`);
const { connectRequest, muxConnect } = await import(`${dist}bench/connect-rate.js`);
const { downloadVerified, uploadVerified } = await import(`${dist}bench/verified.js`);

const [udid, mibText, connsText] = process.argv.slice(2);
const MiB = 1 << 20;
const conns = Number(connsText ?? 4);
const each = Math.floor(Number(mibText) / conns) * MiB;
if (!udid || !(each >= MiB)) {
  process.stderr.write('usage: integrity.mjs UDID MIB CONNS (at least 1 MiB per connection)\n');
  process.exit(1);
}
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const address = { kind: 'unix', path: '/var/run/usbmuxd' };
const device = (await new UsbmuxClient({ timeoutMs: 10_000 }).listDevices()).find((d) => d.serialNumber === udid);
if (!device) {
  say({ ok: false, error: `${udid} is not listed` });
  process.exit(1);
}

const started = performance.now();
const results = await Promise.all(
  Array.from({ length: conns }, async (_, i) => {
    const up = i % 2 === 0;
    try {
      const socket = await muxConnect(address, connectRequest(device.deviceId, up ? 9 : 19), true);
      const r = up ? await uploadVerified(socket, each, i) : await downloadVerified(socket, each);
      socket.destroy();
      const ok = r.local === r.remote && r.bytes === each;
      say({ conn: i, direction: up ? 'up' : 'down', bytes: r.bytes, mbps: +(r.bytes / 1e3 / r.ms).toFixed(1), local: r.local, remote: r.remote, ok });
      return ok ? r.bytes : 0;
    } catch (err) {
      say({ conn: i, direction: up ? 'up' : 'down', ok: false, error: err.message });
      return 0;
    }
  }),
);
const bytes = results.reduce((a, b) => a + b, 0);
const seconds = (performance.now() - started) / 1000;
say({ ok: bytes === each * conns, bytes, seconds: +seconds.toFixed(1), mbps: +(bytes / 1e6 / seconds).toFixed(1) });
process.exit(bytes === each * conns ? 0 : 1);
