// `tsmuxd rsd --address HOST:PORT [--json]`: connects to a RemoteServiceDiscovery
// endpoint (a phone's RSD port inside a tunnel, or the sim's in direct mode),
// runs the RemoteXPC handshake and prints the peer-info: the device's
// properties and the services it lists with their ports. With --udid UDID
// it goes through the daemon: the phone's CoreDeviceProxy tunnel (started if
// it has none), then a TunnelConnect to serverAddress:serverRSDPort.
import { HostConnection, HANDSHAKE_ORDERINGS, type HandshakeOrdering } from '../../xpc/host-connection.js';
import { parsePeerInfo, xpcToJson } from '../../xpc/rsd.js';
import { clientFor, daemonAddress, parseCommandArgs, table, UsageError } from './common.js';

export const RSD_HELP = `usage: tsmuxd rsd (--address HOST:PORT | --udid UDID) [--json] [--ordering pymobiledevice3|idevice|go-ios]
  the RemoteServiceDiscovery peer-info of a device: its properties and services
      --address HOST:PORT  the RSD endpoint ([IPv6]:PORT for an address with colons)
      --udid UDID          through the daemon: the phone's CoreDeviceProxy tunnel (iOS 17.4+;
                           started if it has none), to its RSD port inside it
  -S, --socket ADDR        with --udid: the daemon (default as for the other commands)
      --json               the whole peer-info as one JSON object
      --ordering O         which client's handshake order to use (default pymobiledevice3)
      --timeout-ms N       give up after this long (default 10000)
  -h, --help               this text
`;

export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--address wants HOST:PORT, not '${text}'`);
  return { host: m[1]!, port };
}

export async function runRsd(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args: argv,
    options: {
      address: { type: 'string', short: 'a' },
      udid: { type: 'string', short: 'u' },
      socket: { type: 'string', short: 'S' },
      json: { type: 'boolean' },
      ordering: { type: 'string' },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(RSD_HELP);
    return 0;
  }
  if (!values.address === !values.udid) throw new UsageError('give one of --address HOST:PORT and --udid UDID');
  const ordering = (values.ordering ?? 'pymobiledevice3') as HandshakeOrdering;
  if (!HANDSHAKE_ORDERINGS.includes(ordering)) throw new UsageError(`--ordering is one of ${HANDSHAKE_ORDERINGS.join(', ')}`);
  const timeoutMs = values['timeout-ms'] === undefined ? 10_000 : Number(values['timeout-ms']);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout-ms wants a positive whole number');

  let connection: HostConnection;
  if (values.udid) {
    const usbmux = clientFor(daemonAddress(values.socket), timeoutMs);
    const tunnel = await usbmux.startTunnel(values.udid);
    const socket = await usbmux.tunnelConnect(values.udid, tunnel.serverRsdPort);
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer from RSD in ${values.udid}'s tunnel within ${timeoutMs} ms`)));
    connection = new HostConnection(socket);
  } else {
    const { host, port } = parseHostPort(values.address!);
    connection = await HostConnection.open(host, port, timeoutMs);
  }
  try {
    await connection.handshake(ordering);
    const message = await connection.nextRootMessage();
    const info = parsePeerInfo(message.body!);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(xpcToJson(message.body!), null, 2)}\n`);
      return 0;
    }
    const props = xpcToJson(info.properties) as Record<string, unknown>;
    const lines = [`UDID ${info.udid}`, `UUID ${info.uuid}`, `MessagingProtocolVersion ${info.messagingProtocolVersion}`, ''];
    lines.push(...Object.entries(props).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`), '');
    const rows = [...info.services]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((s) => [s.name, String(s.port), s.properties.get('UsesRemoteXPC') === true ? 'xpc' : 'shim/lockdown']);
    lines.push(...table(['SERVICE', 'PORT', 'KIND'], rows));
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    connection.close();
  }
}
