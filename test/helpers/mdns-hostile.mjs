// A hostile network neighbour for test/wifi-network.test.ts, run in the
// phone's namespace: `node mdns-hostile.mjs MY_ADDRESS SILENT_ADDRESS MAC`.
// - a flood: 3000 mDNS responses in about a second, each a new instance;
// - an instance whose TXT record is over the caps;
// - instances whose address records are bogus (multicast, unspecified);
// - an instance carrying MAC (a paired phone's) at SILENT_ADDRESS, where a
//   lockdownd accepts connections and then says nothing.
// It prints "done" once it has sent everything and keeps the silent
// listener until stdin closes.
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const mdns = require('multicast-dns');
const [myAddress, silentAddress, mac] = process.argv.slice(2);
const SERVICE = '_apple-mobdev2._tcp.local';
const socket = mdns({ interface: myAddress, reuseAddr: true, loopback: false });

const silent = net.createServer(() => {
  // accepted, and never a byte back
});
await new Promise((resolve) => silent.listen(62078, silentAddress, resolve));

// Short-lived records: once the test has looked, they expire and leave the
// daemon's tables to the real phones again.
const TTL = 8;

function announce(label, host, address, txt, ttl = TTL) {
  const name = `${label}.${SERVICE}`;
  socket.respond({
    answers: [{ name: SERVICE, type: 'PTR', ttl, data: name }],
    additionals: [
      { name, type: 'SRV', ttl, data: { priority: 0, weight: 0, port: 62078, target: host } },
      { name, type: 'TXT', ttl, data: txt },
      { name: host, type: 'A', ttl, data: address },
    ],
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
await sleep(200);
announce('02:00:00:00:00:01@fe80::1', 'big-txt.local', silentAddress, Array.from({ length: 40 }, (_, i) => Buffer.from(`k${i}=${'v'.repeat(60)}`)));
announce('02:00:00:00:00:02@fe80::2', 'bogus-a.local', '224.1.2.3', [Buffer.from('')]);
announce('02:00:00:00:00:03@fe80::3', 'zero-a.local', '0.0.0.0', [Buffer.from('')]);
// Long enough for the daemon's lockdown timeout (10 s) to run out.
announce(`${mac}@fe80::dead`, 'silent.local', silentAddress, [Buffer.from('')], 60);
for (let i = 0; i < 3000; i++) {
  announce(`02:ff:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}:00:00@fe80::${i.toString(16)}`, `flood-${i}.local`, silentAddress, [Buffer.from('')]);
  if (i % 100 === 99) await sleep(30);
}
process.stdout.write('done\n');
process.stdin.resume();
process.stdin.on('end', () => {
  socket.destroy();
  silent.close();
  process.exit(0);
});
