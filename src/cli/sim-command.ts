// `tsmuxd sim`: simulated iPhones on a virtual cable, one child process each
// under the supervisor (sim-supervised.ts), or one on a USB gadget's
// FunctionFS mount (the lab) in this process. sim-peer-main.js, the child, runs
// its phone here (runPeerMain), taking the supervisor's prepared
// environment (src/supervisor/sim-process.ts) as defaults for its flags.
// Each prints JSON lines on stdout (ready, unplugged, plugged, link-lost),
// and takes commands as lines on stdin ("trust", "deny", "unplug", "plug", "drop-tunnels",
// "replug [ms]", each optionally followed by a sim index) and as signals
// (SIGUSR1 trust, SIGUSR2 deny, SIGHUP replug, all sims). A sim whose host
// goes away keeps trying to plug back in, as a phone left on the cable would
// be found again by a restarted daemon.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { MuxEngine } from '../native/mux-engine.js';
import { PHONE_FFS_INTERFACES, type PhoneFfsInterface } from '../sim/descriptor.js';
import { TRUST_MODES, type TrustMode } from '../protocol/sim-control.js';
import { startPeer, type Peer } from '../sim/peer.js';
import { udidToSerial } from '../sim/state.js';
import { SIM_ENV } from '../supervisor/sim-process.js';
import { runSupervisedSims } from './sim-supervised.js';
import { loadNativeTesting } from '../native/testing.js';
import { checkSimTunnelOptions, type SimTunnelOptions } from '../sim/tunnel/sim-tunnels.js';

export const SIM_HELP = `usage: tsmuxd sim (--cable PATH | --ffs DIR) [options]

  --cable PATH             the daemon's virtual-cable socket (tsmuxd --cable PATH)
  --ffs DIR                a mounted FunctionFS of a configured USB gadget (one phone;
                           --serial must be the gadget's serial string)
  --ffs-interface KIND=DIR with --ffs: a placeholder interface a phone shows around the
                           mux (KIND ptp, audio or ethernet), repeatable
  --raw                    with --ffs: no mux; the function is the raw bulk measuring
                           device (SINK/SOURCE/ECHO, native/testing/raw_bulk.h) the lab's
                           benchmark uses as its ceiling; its logs go to stdout
  --count N                run N phones (default 1), one child process each under a
                           supervisor that restarts a crashed one as the same phone
  --udid UDID              the phone's UDID (40 hex, or 8-16 hex with a dash); one phone only
  --trust MODE             auto (default), prompt or deny: how the Trust dialog is answered
  --trust-delay-ms N       auto: the dialog shows this long before it is accepted
  --product-version V      iOS version lockdownd reports (default 17.5)
  --product-type T         e.g. iPhone15,3
  --device-name NAME
  --state-dir DIR          keep identity, device key and pair records here
                           (with --count N: one subdirectory per phone)
  --no-reenumerate         stay on USB when Trust is tapped
  --window BYTES           the receive window the device advertises
  --max-packet-size N      the bulk endpoints' wMaxPacketSize (default 512)
  --socket-dir DIR         serve the services on Unix sockets in DIR
                           (with --count N: one subdirectory per phone)
  --json-log               the supervisor's log lines (stderr) as JSON
  --rsd-port N             also serve RemoteServiceDiscovery (RemoteXPC, direct mode) on
                           127.0.0.1:N (0: any free port; with --count, N+index); printed
                           as an "rsd" event and in "ready"
  --tunnel-max-mtu N       the largest MTU the phone grants a CoreDeviceProxy tunnel
                           (default 16000; the host's request caps it too)
  --tunnel-drop-oversize N as a real phone under load: drop tunnel packets from the host
                           over N bytes (at least 1280)
  --tunnel-loss-rate R     drop this fraction (0 to <1) of the tunnel packets from the host
                           (tunnels print "tunnel", "tunnel-closed" and "tunnel-refused" events)
  --wifi                   also on the network (one phone, in this process; --cable optional):
                           lockdownd, the heartbeat and the services over TCP at --address,
                           announced over mDNS as _apple-mobdev2._tcp (docs/wifi.md)
  --address ADDR           with --wifi (required): the phone's address, one of this host's
                           and not loopback (a daemon ignores phones on loopback)
  --private-address        with --wifi: a random MAC in the mDNS name and identifier/authTag
                           in TXT, as iOS 26.4's private Wi-Fi address
  --heartbeat-interval S   the Interval the heartbeat service announces (default 10)

stdin commands: trust|deny|unplug|plug|replug|drop-tunnels|wifi-off|wifi-on [INDEX] [MS]
                (no index: every phone; wifi-off: off the network, silently)
signals: SIGUSR1 trust, SIGUSR2 deny, SIGHUP replug (with --ffs: print the data-plane
counters, as the lab's UDC owns plugging), SIGTERM quit
`;

const PLUG_RETRY_MS = 1000;

export function positive(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} needs a whole number, not '${v}'`);
  return n;
}

export function emit(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

export type SimValues = ReturnType<typeof parseSimArgs>;

export function parseSimArgs(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      cable: { type: 'string' },
      ffs: { type: 'string' },
      'ffs-interface': { type: 'string', multiple: true },
      raw: { type: 'boolean' },
      count: { type: 'string' },
      udid: { type: 'string' },
      serial: { type: 'string' },
      trust: { type: 'string' },
      'trust-delay-ms': { type: 'string' },
      'product-version': { type: 'string' },
      'product-type': { type: 'string' },
      'device-name': { type: 'string' },
      'state-dir': { type: 'string' },
      'no-reenumerate': { type: 'boolean' },
      window: { type: 'string' },
      'max-packet-size': { type: 'string' },
      'socket-dir': { type: 'string' },
      'json-log': { type: 'boolean' },
      'rsd-port': { type: 'string' },
      'tunnel-max-mtu': { type: 'string' },
      'tunnel-drop-oversize': { type: 'string' },
      'tunnel-loss-rate': { type: 'string' },
      wifi: { type: 'boolean' },
      address: { type: 'string' },
      'private-address': { type: 'boolean' },
      'heartbeat-interval': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  return values;
}

/** `tsmuxd sim`: a supervisor of one child per phone on a cable; a FunctionFS phone runs here. */
export async function runSimCommand(argv: string[]): Promise<number> {
  const values = parseSimArgs(argv);
  if (values.help) {
    process.stdout.write(SIM_HELP);
    return 0;
  }
  if (values.wifi && !values.ffs) {
    checkSimValues(values);
    return runPhones(values);
  }
  if (!values.cable === !values.ffs) throw new Error(`one of --cable and --ffs is required\n\n${SIM_HELP}`);
  checkSimValues(values);
  if (values.ffs) return runPhones(values);
  return runSupervisedSims(values);
}

/** sim-peer-main.js: the phones in this process, with the supervisor's environment as defaults. */
export async function runPeerMain(argv: string[]): Promise<number> {
  const values = parseSimArgs(argv);
  values.cable ??= process.env[SIM_ENV.cable];
  values['state-dir'] ??= process.env[SIM_ENV.stateDir];
  if (!values.serial) values.udid ??= process.env[SIM_ENV.udid];
  if (!values.cable === !values.ffs) throw new Error('one of --cable and --ffs is required');
  checkSimValues(values);
  return runPhones(values);
}

/** The --tunnel-* flags as the phone's tunnel options (checked). */
export function simTunnelOptions(values: SimValues): SimTunnelOptions {
  const rate = values['tunnel-loss-rate'];
  const options: SimTunnelOptions = {
    maxMtu: positive('tunnel-max-mtu', values['tunnel-max-mtu']),
    dropOversize: positive('tunnel-drop-oversize', values['tunnel-drop-oversize']),
    lossRate: rate === undefined ? undefined : Number(rate),
  };
  checkSimTunnelOptions(options);
  return options;
}

function checkSimValues(values: SimValues): void {
  simTunnelOptions(values);
  const trust = values.trust as TrustMode | undefined;
  if (trust !== undefined && !TRUST_MODES.includes(trust)) throw new Error(`--trust is auto, prompt or deny, not '${trust}'`);
  const count = positive('count', values.count) ?? 1;
  if (count < 1) throw new Error('--count must be at least 1');
  if ((values.udid || values.serial) && count > 1) throw new Error('--udid and --serial name one phone; leave them out with --count');
  if (values.udid) udidToSerial(values.udid);
  if (values.ffs && count > 1) throw new Error('a FunctionFS mount carries one phone');
  if (values.wifi && (count > 1 || values.ffs)) throw new Error('--wifi runs one phone, on a cable or none');
  if ((values.address || values['private-address']) && !values.wifi) throw new Error('--address and --private-address go with --wifi');
  if (values.wifi && values.address === undefined) throw new Error('--wifi needs --address ADDR (the phone\'s address on the network)');
  if (values.address !== undefined && isIP(values.address) === 0) throw new Error(`--address needs an IP address, not '${values.address}'`);
  const interval = positive('heartbeat-interval', values['heartbeat-interval']);
  if (interval === 0) throw new Error('--heartbeat-interval must be at least 1');
  if (values.raw && !values.ffs) throw new Error('--raw needs --ffs (the raw bulk device is a FunctionFS function)');
  if (values.raw && !loadNativeTesting()) {
    throw new Error('--raw needs the testing addon (tsmuxd_testing), which is only in a checkout, not in an installed package');
  }
  for (const spec of values['ffs-interface'] ?? []) {
    const [kind, dir] = spec.split('=', 2) as [string, string | undefined];
    if (!values.ffs || !dir || !(kind in PHONE_FFS_INTERFACES)) {
      throw new Error(`--ffs-interface wants KIND=DIR with --ffs, KIND one of ${Object.keys(PHONE_FFS_INTERFACES).join(', ')}`);
    }
  }
}

/** The phones of `values` in this process, each on the shared engine. */
async function runPhones(values: SimValues): Promise<number> {
  const trust = values.trust as TrustMode | undefined;
  const count = positive('count', values.count) ?? 1;
  const serial = values.udid ? udidToSerial(values.udid) : values.serial;
  const ffsInterfaces: Partial<Record<PhoneFfsInterface, string>> = {};
  for (const spec of values['ffs-interface'] ?? []) {
    const [kind, dir] = spec.split('=', 2) as [string, string];
    ffsInterfaces[kind as PhoneFfsInterface] = dir;
  }

  const rsdPort = positive('rsd-port', values['rsd-port']);
  if (rsdPort !== undefined && rsdPort + count - 1 > 65535) throw new Error('--rsd-port is past 65535');

  const engine = new MuxEngine();
  const peers: Peer[] = [];
  const cable = values.cable;
  const stateDir = values['state-dir'];
  const retries = new Set<NodeJS.Timeout>();
  const keepPlugging = (peer: Peer) => {
    const timer = setTimeout(() => {
      retries.delete(timer);
      try {
        peer.plug();
      } catch {
        keepPlugging(peer);
      }
    }, PLUG_RETRY_MS);
    retries.add(timer);
  };
  for (let index = 0; index < count; index++) {
    const peer: Peer = await startPeer({
      cable,
      ffs: values.ffs,
      ffsInterfaces,
      raw: values.raw,
      // The raw device has no mux events to print; its logs are what it says.
      onRawLog: (level, text) => emit({ event: 'log', level, text }),
      engine,
      stateDir: stateDir && count > 1 ? join(stateDir, `sim-${index}`) : stateDir,
      usb: { serial, maxPacketSize: positive('max-packet-size', values['max-packet-size']) },
      identity: {
        productVersion: values['product-version'],
        productType: values['product-type'],
        deviceName: values['device-name'],
      },
      trust,
      trustDelayMs: positive('trust-delay-ms', values['trust-delay-ms']),
      reenumerateOnTrust: !values['no-reenumerate'],
      window: positive('window', values.window),
      socketDir: values['socket-dir'] && count > 1 ? join(values['socket-dir'], `sim-${index}`) : values['socket-dir'],
      rsdPort: rsdPort === undefined ? undefined : rsdPort === 0 ? 0 : rsdPort + index,
      tunnel: simTunnelOptions(values),
      wifi: values.wifi ? { address: values.address!, privateAddress: values['private-address'] } : undefined,
      heartbeat: values['heartbeat-interval'] ? { interval: positive('heartbeat-interval', values['heartbeat-interval']) } : undefined,
      onTunnel: (event) => {
        emit({ ...event, index, udid: peer.identity.udid });
        // The supervisor logs a child's stderr: a refused tunnel says why in the daemon's log.
        if (event.event === 'tunnel-refused') process.stderr.write(`${process.env[SIM_ENV.logPrefix] ?? 'tsmuxd sim'}: tunnel ${event.tunnel} refused: ${event.reason}\n`);
      },
      onReady: () =>
        emit({
          event: 'ready',
          ready: true,
          index,
          udid: peer.identity.udid,
          serial: peer.serial,
          pid: process.pid,
          services: peer.services,
          ...(peer.rsd ? { rsdPort: peer.rsd.port } : {}),
        }),
      onLinkLost: (reason) => {
        emit({ event: 'link-lost', index, udid: peer.identity.udid, reason });
        // A gadget comes back by itself when its UDC is bound again.
        if (!values.ffs) keepPlugging(peer);
      },
    });
    peers.push(peer);
    if (peer.wifi) {
      emit({ event: 'wifi', index, udid: peer.identity.udid, address: peer.wifi.address, instance: peer.wifi.instance, services: peer.services });
      // On the network alone there is no mux handshake to say it is ready.
      if (!cable) emit({ event: 'ready', ready: true, index, udid: peer.identity.udid, serial: peer.serial, pid: process.pid, services: peer.services });
    }
    if (peer.rsd) emit({ event: 'rsd', index, udid: peer.identity.udid, address: `127.0.0.1:${peer.rsd.port}`, port: peer.rsd.port });
    // The lab binds the gadget to its UDC once the descriptors are on ep0.
    if (values.ffs) emit({ event: 'descriptors', descriptors: true, ffs: values.ffs, serial: peer.serial, pid: process.pid });
  }

  const select = (index: string | undefined): Peer[] => {
    if (index === undefined) return peers;
    const p = peers[Number(index)];
    return p ? [p] : [];
  };
  const command = (words: string[]): void => {
    const [verb, index, ms] = words;
    const chosen = select(index);
    if (chosen.length === 0) return emit({ event: 'error', message: `no sim ${index}` });
    for (const p of chosen) {
      const i = peers.indexOf(p);
      switch (verb) {
        case 'trust':
          p.trust();
          break;
        case 'deny':
          p.deny();
          break;
        case 'unplug':
          p.unplug();
          emit({ event: 'unplugged', index: i, udid: p.identity.udid });
          break;
        case 'plug':
          p.plug();
          emit({ event: 'plugged', index: i, udid: p.identity.udid });
          break;
        case 'wifi-off':
        case 'wifi-on':
          if (!p.wifi) return emit({ event: 'error', message: `sim ${i} is not on the network (--wifi)` });
          void (verb === 'wifi-on' ? p.wifi.on() : p.wifi.off()).then(
            () => emit({ event: verb, index: i, udid: p.identity.udid }),
            (err: Error) => emit({ event: 'error', message: `${verb}: ${err.message}` }),
          );
          break;
        case 'drop-tunnels':
          emit({ event: 'tunnels-dropped', index: i, udid: p.identity.udid, count: p.tunnels.dropAll() });
          break;
        case 'replug':
          emit({ event: 'unplugged', index: i, udid: p.identity.udid });
          void p.replug(ms === undefined ? undefined : Number(ms)).then(() => emit({ event: 'plugged', index: i, udid: p.identity.udid }));
          break;
        default:
          return emit({ event: 'error', message: `unknown command '${verb}'` });
      }
    }
  };

  const lines = createInterface({ input: process.stdin });
  const done = new Promise<void>((resolve) => {
    const quit = () => resolve();
    process.once('SIGTERM', quit);
    process.once('SIGINT', quit);
    process.on('SIGUSR1', () => command(['trust']));
    process.on('SIGUSR2', () => command(['deny']));
    process.on('SIGHUP', () => (values.ffs ? emit({ event: 'stats', stats: engine.stats() }) : command(['replug'])));
    lines.on('line', (line) => {
      const words = line.trim().split(/\s+/).filter(Boolean);
      if (words[0] === 'quit') quit();
      else if (words.length) command(words);
    });
    // The daemon that spawned us closes our stdin when it goes; so do we.
    lines.on('close', () => {
      if (process.env[SIM_ENV.stdinExit] === '1') quit();
    });
  });
  await done;
  // stdin would keep the process alive after the phones are gone.
  lines.close();
  process.stdin.destroy();
  for (const timer of retries) clearTimeout(timer);
  for (const p of peers) await p.close();
  engine.close();
  return 0;
}
