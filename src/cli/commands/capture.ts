// `tsmuxd capture`: what crosses the daemon, as pcapng (docs/capture.md),
// to a file or to stdout (`-w -`, for `| wireshark -k -i -`), until Ctrl-C.
// Then the capture is half-closed: the daemon writes its statistics (the
// drops among them) and closes, and the summary goes to stderr.
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { PcapngSummary } from '../../client/pcapng-summary.js';
import { MAX_CAPTURE_RING_BYTES, MIN_CAPTURE_RING_BYTES } from '../../protocol/capture.js';
import { parseSize } from '../../util/size.js';
import { clientFor, COMMON_HELP, daemonAddress, formatBytes, parseCommandArgs, untilSignal, UsageError } from './common.js';

const HELP = `usage: tsmuxd capture [--udid UDID] [--port PORT] [-w FILE|-] [--ring SIZE] [--socket ADDR]

Writes what crosses the daemon as pcapng until interrupted (Ctrl-C), for
Wireshark or tshark: each phone's mux connections as IPv6/TCP (Follow TCP
Stream works), its VERSION/SETUP/CONTROL packets, its tunnel's IPv6
packets, and the TLS secrets of the sessions the daemon runs itself
(preflight, tunnels), so those decrypt without setup. Only the daemon's own
user and root may capture. tsmuxd only.

  -w, --write FILE    the pcapng file, or - for stdout (default: -)
  -u, --udid UDID     one phone (also after a replug)
  -p, --port PORT     one device port (62078 is lockdown)
      --ring SIZE     the daemon's buffer for this capture (default 32M); a
                      reader slower than the traffic loses packets, counted
${COMMON_HELP}`;

function parsePort(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--port ${text} is not in 1..65535`);
  return port;
}

function parseRing(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const bytes = parseSize(text);
  if (!(bytes >= MIN_CAPTURE_RING_BYTES && bytes <= MAX_CAPTURE_RING_BYTES)) {
    throw new UsageError(`--ring ${text} is not from 64K to 256M`);
  }
  return bytes;
}

export async function runCapture(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args: argv,
    options: {
      write: { type: 'string', short: 'w' },
      udid: { type: 'string', short: 'u' },
      port: { type: 'string', short: 'p' },
      ring: { type: 'string' },
      socket: { type: 'string', short: 'S' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const request = { udid: values.udid, port: parsePort(values.port), ringBytes: parseRing(values.ring) };
  const target = values.write ?? '-';
  const socket = await clientFor(daemonAddress(values.socket)).capture(request);
  const out: Writable = target === '-' ? process.stdout : createWriteStream(target, { mode: 0o600 });
  const summary = new PcapngSummary();
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      summary.push(chunk);
      done(null, chunk);
    },
  });
  // Ctrl-C ends the capture, not the command: the daemon still writes its statistics.
  const signal = untilSignal();
  signal.done.then(() => socket.end(), () => undefined);
  try {
    await pipeline(socket, count, out);
  } catch (err) {
    socket.destroy();
    process.stderr.write(`tsmuxd capture: ${target === '-' ? 'stdout' : target}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    signal.cancel();
  }
  const c = summary.counts;
  const drops = c.dropped === undefined ? 'no statistics (the capture did not end cleanly)' : `${c.dropped} dropped`;
  process.stderr.write(`tsmuxd capture: ${c.packets} packets, ${c.secrets} TLS secrets, ${formatBytes(socket.bytesRead)}; ${drops}\n`);
  return 0;
}
