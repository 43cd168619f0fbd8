// `tsmuxd tunnel start | ls | stop`: the daemon's CoreDeviceProxy tunnels
// (iOS 17.4+). The tunnel lives in the daemon, not in this command: start
// returns once it is up and prints how to reach ports inside it (forward
// --tunnel, rsd --udid, or its go-ios-style preamble listener).
import type { TunnelDescription, UsbmuxClient } from '../../client/usbmux-client.js';
import { findDevice } from '../../client/lockdown-session.js';
import { clientFor, COMMON_HELP, COMMON_OPTIONS, daemonAddress, parseCommandArgs, table, UsageError } from './common.js';

export const TUNNEL_HELP = `usage: tsmuxd tunnel start [UDID] [--mss N] [--json] [--socket ADDR]
       tsmuxd tunnel ls [--json] [--socket ADDR]
       tsmuxd tunnel stop [UDID] [--json] [--socket ADDR]

A CoreDeviceProxy tunnel (iOS 17.4+) to the phone, kept by the daemon: an
IPv6 link with the phone whose TCP ports (RemoteServiceDiscovery and the
developer services it lists) local programs reach without root, through
'tsmuxd forward --tunnel' or the tunnel's preamble listener (go-ios's: 16
bytes of IPv6 destination and a 4-byte little-endian port, then the stream).

  start [UDID]   start the phone's tunnel (the first device without UDID);
                 a phone that has one keeps it
      --mss N    the send MSS (default 1340: real phones drop bigger packets under load)
  ls             the daemon's tunnels
  stop [UDID]    end the phone's tunnel (without UDID: the only one)
${COMMON_HELP}`;

function describe(t: TunnelDescription): string {
  return [
    `tunnel to ${t.udid} (device ${t.deviceId})`,
    `  host address    ${t.address}`,
    `  device address  ${t.serverAddress}`,
    `  RSD port        ${t.serverRsdPort}`,
    `  MTU             ${t.mtu} (send MSS ${t.sendMss})`,
    `  preamble        ${t.preambleHost}:${t.preamblePort} (16-byte IPv6 + u32 LE port, then the stream)`,
    t.mode === 'tun'
      ? `  mode            tun: kernel interface ${t.interfaceName}; any program reaches [${t.serverAddress}]:PORT`
      : '  mode            userspace: reach it through the preamble listener, TunnelConnect or forward',
    '',
    'Reach ports inside it:',
    `  tsmuxd rsd --udid ${t.udid}                     the services and their ports`,
    `  tsmuxd forward --tunnel ${t.udid} LOCAL:PORT    local port LOCAL to PORT at ${t.serverAddress}`,
  ].join('\n');
}

async function start(usbmux: UsbmuxClient, udid: string | undefined, mss: number | undefined, json: boolean): Promise<number> {
  const target = udid ?? (await findDevice(usbmux, undefined)).serialNumber;
  const t = await usbmux.startTunnel(target, { sendMss: mss });
  process.stdout.write(json ? `${JSON.stringify(t)}\n` : `${describe(t)}\n`);
  return 0;
}

async function list(usbmux: UsbmuxClient, json: boolean): Promise<number> {
  const tunnels = await usbmux.listTunnels();
  if (json) {
    process.stdout.write(`${JSON.stringify(tunnels)}\n`);
    return 0;
  }
  if (tunnels.length === 0) {
    process.stdout.write('no tunnels\n');
    return 0;
  }
  const rows = tunnels.map((t) => [
    t.udid,
    String(t.deviceId),
    t.address,
    t.serverAddress,
    String(t.serverRsdPort),
    String(t.mtu),
    String(t.sendMss),
    `${t.preambleHost}:${t.preamblePort}`,
    t.mode === 'tun' ? `tun ${t.interfaceName}` : 'userspace',
  ]);
  process.stdout.write(`${table(['UDID', 'DEVICE', 'HOST ADDRESS', 'DEVICE ADDRESS', 'RSD', 'MTU', 'MSS', 'PREAMBLE', 'MODE'], rows).join('\n')}\n`);
  return 0;
}

async function stop(usbmux: UsbmuxClient, udid: string | undefined, json: boolean): Promise<number> {
  let target = udid;
  if (target === undefined) {
    const tunnels = await usbmux.listTunnels();
    if (tunnels.length === 0) throw new Error('the daemon has no tunnels');
    if (tunnels.length > 1) throw new UsageError(`${tunnels.length} tunnels are up: name the UDID of one (tsmuxd tunnel ls)`);
    target = tunnels[0]!.udid;
  }
  await usbmux.stopTunnel(target);
  process.stdout.write(json ? `${JSON.stringify({ udid: target, stopped: true })}\n` : `tunnel to ${target} stopped\n`);
  return 0;
}

export async function runTunnel(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    options: { ...COMMON_OPTIONS, mss: { type: 'string' } },
    allowPositionals: true,
  });
  const [verb, udid, ...extra] = positionals;
  if (values.help) {
    process.stdout.write(TUNNEL_HELP);
    return 0;
  }
  if (verb === undefined) throw new UsageError('give a tunnel command: start, ls or stop');
  if (extra.length) throw new UsageError(`unexpected '${extra.join(' ')}'`);
  const mss = values.mss === undefined ? undefined : Number(values.mss);
  if (mss !== undefined && !Number.isInteger(mss)) throw new UsageError(`--mss wants a whole number, not '${values.mss}'`);
  if (mss !== undefined && verb !== 'start') throw new UsageError('--mss is for tunnel start');
  const usbmux = clientFor(daemonAddress(values.socket));
  const json = values.json ?? false;
  switch (verb) {
    case 'start':
      return start(usbmux, udid, mss, json);
    case 'ls':
    case 'list':
      if (udid !== undefined) throw new UsageError('tunnel ls takes no UDID');
      return list(usbmux, json);
    case 'stop':
      return stop(usbmux, udid, json);
    default:
      throw new UsageError(`unknown tunnel command '${verb}': start, ls or stop`);
  }
}
