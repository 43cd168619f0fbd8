// The user commands, in help order: what `tsmuxd help` shows of each, and the
// module that runs it, imported only when that command runs. `tsmuxd devices`
// then loads the client and nothing of the daemon, the addon or node-forge.
import type { PairingVerb } from './pairing.js';

/** One `tsmuxd <name>` command. */
export interface CliCommand {
  name: string;
  /** The one-line usage shown by `tsmuxd help`. */
  usage: string;
  summary: string;
  /** Returns the exit code; throws a UsageError for bad arguments. */
  run(args: string[]): Promise<number>;
}

const pairing = (name: PairingVerb, summary: string): CliCommand => ({
  name,
  usage: `${name} [UDID]${name === 'pair' ? ' [--wait SECONDS]' : ''} [--json]`,
  summary,
  run: async (args) => (await import('./pairing.js')).runPairing(name, args),
});

export const COMMANDS: CliCommand[] = [
  {
    name: 'devices',
    usage: 'devices [--watch] [--json] [--socket ADDR]',
    summary: 'list devices, or stream attach/detach/pair events',
    run: async (args) => (await import('./devices.js')).runDevices(args),
  },
  {
    name: 'info',
    usage: 'info [UDID] [--domain D] [KEY] [--simple] [--json]',
    summary: 'lockdown values, read in a TLS session with the stored pair record',
    run: async (args) => (await import('./info.js')).runInfo(args),
  },
  pairing('pair', 'pair with a phone, waiting while it shows the Trust dialog'),
  pairing('validate', 'check the pairing with a TLS session'),
  pairing('unpair', 'forget the pairing on both sides'),
  {
    name: 'forward',
    usage: 'forward [--udid UDID | --tunnel UDID] [--json] [--socket ADDR] [ADDR:]LOCAL:DEVICE_PORT ...',
    summary: 'forward local TCP ports to device ports, like iproxy, or to ports inside a tunnel',
    run: async (args) => (await import('./forward.js')).runForward(args),
  },
  {
    name: 'wifi',
    usage: 'wifi enable|disable|status [UDID] [--json] [--socket ADDR]',
    summary: "turn a phone's Wi-Fi connections on or off (over USB), or show the setting",
    run: async (args) => (await import('./wifi.js')).runWifi(args),
  },
  {
    name: 'remote',
    usage: 'remote add HOST:PORT [--ca F --cert F --key F | --insecure] | ls | rm HOST:PORT [--json]',
    summary: "remote usbmux hosts whose phones the daemon lists as its own (mutual TLS)",
    run: async (args) => (await import('./remote.js')).runRemote(args),
  },
  {
    name: 'top',
    usage: 'top [--once] [--interval SECONDS] [--json] [--socket ADDR]',
    summary: 'live per-device and per-connection bytes, rates, windows and RTT (tsmuxd only)',
    run: async (args) => (await import('./top.js')).runTop(args),
  },
  {
    name: 'capture',
    usage: 'capture [--udid UDID] [--port PORT] [-w FILE|-] [--ring SIZE] [--socket ADDR]',
    summary: 'what crosses the daemon as pcapng for Wireshark, decryptable (tsmuxd only)',
    run: async (args) => (await import('./capture.js')).runCapture(args),
  },
  {
    name: 'bench',
    usage: 'bench [--socket ADDR] [--quick] [--json]',
    summary: 'measure any usbmuxd: throughput, RTT, Connect rate, CPU per GiB',
    run: async (args) => (await import('./bench.js')).runBenchCommand(args),
  },
  {
    name: 'rsd',
    usage: 'rsd (--address HOST:PORT | --udid UDID) [--json]',
    summary: "RemoteServiceDiscovery: a device's properties and services over RemoteXPC",
    run: async (args) => (await import('./rsd.js')).runRsd(args),
  },
  {
    name: 'tunnel',
    usage: 'tunnel start [UDID] [--mss N] | ls | stop [UDID] [--json]',
    summary: "a phone's CoreDeviceProxy tunnel (iOS 17.4+) in the daemon: start, list, stop",
    run: async (args) => (await import('./tunnel.js')).runTunnel(args),
  },
];
