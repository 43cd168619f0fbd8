// `tsmuxd forward`: like iproxy, with several mappings at once. Each local
// port accepts clients; each client gets its own usbmux Connect to the
// device port and the two sockets are piped both ways with backpressure
// (stream.pipeline), so a slow reader on either end slows the other. With
// --tunnel UDID each client gets a TunnelConnect to the port inside the
// phone's CoreDeviceProxy tunnel instead (started if the phone has none).
import net from 'node:net';
import { pipeline } from 'node:stream';

import { DeviceWatcher } from '../../client/device-watcher.js';
import type { UsbmuxClient, UsbmuxDevice } from '../../client/usbmux-client.js';
import {
  clientFor,
  COMMON_HELP,
  COMMON_OPTIONS,
  daemonAddress,
  parseCommandArgs,
  untilSignal,
  UsageError,
} from './common.js';
import { ForwardReporter } from './forward-report.js';

const HELP = `usage: tsmuxd forward [--udid UDID] [--json] [--socket ADDR] [ADDR:]LOCAL:DEVICE_PORT ...
       tsmuxd forward --tunnel UDID [--json] [--socket ADDR] [ADDR:]LOCAL:PORT ...

Listens on each LOCAL port (127.0.0.1 unless ADDR is given; [::1]:LOCAL for
IPv6; LOCAL 0 picks a free port) and connects every client to DEVICE_PORT on
the device, through the daemon. Without --udid the first attached device is
used; with none attached, clients wait for one. On a terminal a status line
shows the bytes and rate of each mapping; otherwise only errors are printed,
or with --json one JSON line per event (listening, open, close, error).

  -u, --udid UDID     the device to use
  -t, --tunnel UDID   connect to PORT inside this phone's CoreDeviceProxy tunnel (at
                      the phone's tunnel address; iOS 17.4+), starting the tunnel if
                      it has none (tsmuxd tunnel start)
${COMMON_HELP}`;

export interface Mapping {
  host: string;
  port: number;
  devicePort: number;
  /** As given on the command line, normalised: HOST:LOCAL:DEVICE_PORT. */
  label: string;
}

export function parseMapping(text: string): Mapping {
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]+):)?(\d{1,5}):(\d{1,5})$/.exec(text);
  if (!m) throw new UsageError(`'${text}' is not [ADDR:]LOCAL:DEVICE_PORT`);
  const host = m[1] ?? m[2] ?? '127.0.0.1';
  const port = Number(m[3]);
  const devicePort = Number(m[4]);
  if (port > 65535) throw new UsageError(`local port ${port} is out of range`);
  if (devicePort < 1 || devicePort > 65535) throw new UsageError(`device port ${devicePort} is out of range`);
  const shown = host.includes(':') ? `[${host}]` : host;
  return { host, port, devicePort, label: `${shown}:${port}:${devicePort}` };
}

/** One local port being served, and the connections it has carried. */
export class MappingState {
  readonly open = new Set<Tunnel>();
  closedUp = 0;
  closedDown = 0;
  total = 0;
  server: net.Server | null = null;
  boundPort = 0;

  constructor(readonly mapping: Mapping) {}

  /** Bytes so far, to the device and from it, open connections included. */
  bytes(): { up: number; down: number } {
    let up = this.closedUp;
    let down = this.closedDown;
    for (const t of this.open) {
      up += t.local.bytesRead;
      down += t.local.bytesWritten;
    }
    return { up, down };
  }
}

interface Tunnel {
  id: number;
  local: net.Socket;
  remote: net.Socket | null;
  started: number;
}

export class Forwarder {
  readonly states: MappingState[];
  private nextId = 1;
  private stopped = false;
  private readonly aborts = new Set<AbortController>();

  constructor(
    mappings: Mapping[],
    private readonly client: UsbmuxClient,
    private readonly watcher: DeviceWatcher,
    private readonly report: ForwardReporter,
    private readonly udid?: string,
    /** Each client becomes a TunnelConnect inside the phone's tunnel, not a mux Connect. */
    private readonly viaTunnel = false,
  ) {
    this.states = mappings.map((m) => new MappingState(m));
  }

  async listen(): Promise<void> {
    for (const state of this.states) {
      const server = net.createServer((socket) => void this.accept(state, socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) => reject(new Error(`cannot listen on ${state.mapping.label}: ${err.message}`)));
        server.listen({ host: state.mapping.host, port: state.mapping.port, exclusive: true }, resolve);
      });
      server.on('error', (err) => this.report.error(`${state.mapping.label}: ${err.message}`));
      state.server = server;
      state.boundPort = (server.address() as net.AddressInfo).port;
      this.report.listening(state);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const a of this.aborts) a.abort(new Error('stopping'));
    for (const state of this.states) {
      state.server?.close();
      for (const t of state.open) {
        t.local.destroy();
        t.remote?.destroy();
      }
    }
  }

  private async accept(state: MappingState, local: net.Socket): Promise<void> {
    if (this.stopped) return void local.destroy();
    local.pause();
    local.setNoDelay(true);
    const tunnel: Tunnel = { id: this.nextId++, local, remote: null, started: Date.now() };
    state.open.add(tunnel);
    state.total++;
    let localGone = false;
    const abort = new AbortController();
    this.aborts.add(abort);
    local.on('error', () => {});
    local.once('close', () => {
      localGone = true;
      abort.abort(new Error('the local client left'));
    });
    const peer = `${local.remoteAddress}:${local.remotePort}`;
    let device: UsbmuxDevice | undefined;
    let remote: net.Socket;
    try {
      device = this.watcher.pick(this.udid);
      if (!device) {
        this.report.waiting(tunnel.id, state, this.udid);
        device = await this.watcher.wait(this.udid, abort.signal);
      }
      remote = await this.open(device, state.mapping.devicePort);
    } catch (err) {
      this.aborts.delete(abort);
      if (!localGone && !this.stopped) {
        const to = device ? `device ${device.deviceId} port ${state.mapping.devicePort}` : 'a device';
        this.report.error(`#${tunnel.id} ${peer}: connecting to ${to} failed: ${(err as Error).message}`, tunnel.id);
      }
      local.destroy();
      this.finish(state, tunnel, device, null);
      return;
    }
    this.aborts.delete(abort);
    if (localGone || this.stopped) {
      remote.destroy();
      this.finish(state, tunnel, device, null);
      return;
    }
    tunnel.remote = remote;
    this.report.opened(tunnel.id, state, peer, device);
    remote.on('error', () => {});
    let failure: Error | null = null;
    let ending = false;
    // usbmux has no half-close: once either direction is done, flush and close
    // both. The other direction then ends early by our own doing, and a peer
    // that closes without a FIN is a close, not a failure.
    const done = (err?: NodeJS.ErrnoException | null) => {
      if (ending) return;
      ending = true;
      if (err && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') failure = err;
      local.destroySoon();
      remote.destroySoon();
    };
    pipeline(local, remote, done);
    pipeline(remote, local, done);
    let closedSockets = 0;
    const closed = () => {
      if (++closedSockets === 2) this.finish(state, tunnel, device, failure);
    };
    local.once('close', closed);
    remote.once('close', closed);
    if (local.destroyed) closed();
    if (remote.destroyed) closed();
  }

  private async open(device: UsbmuxDevice, port: number): Promise<net.Socket> {
    if (!this.viaTunnel) return this.client.connect(device.deviceId, port);
    // A phone that was replugged has a new DeviceID and needs a new tunnel.
    await this.client.startTunnel(device.deviceId);
    return this.client.tunnelConnect(device.deviceId, port);
  }

  private finish(state: MappingState, tunnel: Tunnel, device: UsbmuxDevice | undefined, failure: Error | null): void {
    if (!state.open.delete(tunnel)) return;
    const up = tunnel.local.bytesRead;
    const down = tunnel.local.bytesWritten;
    state.closedUp += up;
    state.closedDown += down;
    if (tunnel.remote) this.report.closed(tunnel.id, state, device, up, down, Date.now() - tunnel.started, failure);
  }
}

export async function runForward(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    options: { ...COMMON_OPTIONS, udid: { type: 'string', short: 'u' }, tunnel: { type: 'string', short: 't' } },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('give at least one LOCAL:DEVICE_PORT mapping');
  if (values.tunnel !== undefined && values.udid !== undefined) throw new UsageError('--tunnel names the device: leave out --udid');
  const mappings = positionals.map(parseMapping);
  const address = daemonAddress(values.socket);
  const client = clientFor(address);
  const report = new ForwardReporter({ json: values.json ?? false, tty: process.stdout.isTTY === true });
  const watcher = new DeviceWatcher(client);
  await watcher.start();
  watcher.on('lost', (err) => report.error(`lost the daemon (${err.message}); retrying`));
  watcher.on('restored', () => report.notice('the daemon is back'));
  watcher.on('attached', (d) => report.device('attached', d));
  watcher.on('detached', (d) => report.device('detached', d));
  const forwarder = new Forwarder(mappings, client, watcher, report, values.tunnel ?? values.udid, values.tunnel !== undefined);
  const signal = untilSignal();
  try {
    await forwarder.listen();
  } catch (err) {
    signal.cancel();
    forwarder.stop();
    watcher.close();
    throw err;
  }
  report.start(forwarder.states);
  await signal.done;
  forwarder.stop();
  watcher.close();
  report.stop(forwarder.states);
  return 0;
}
