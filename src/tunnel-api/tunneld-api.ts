// pymobiledevice3's tunneld HTTP API (pymobiledevice3/tunneld/server.py),
// answered from the daemon's tunnels, so `pymobiledevice3 ... --tunnel UDID`
// and get_tunneld_devices() find them as they would find tunneld's:
//
//   GET /                      {UDID: [{"tunnel-address", "tunnel-port", "interface"}]}
//   GET /hello                 {"message": "Hello, I'm alive"}
//   GET /start-tunnel?udid=U   {"interface", "port", "address"} once the tunnel is up
//   GET /cancel?udid=U         stops U's tunnel; 200 whether it had one or not
//   GET /clear_tunnels         stops every tunnel
//   GET /connect?udid=U[&port=P]  a websocket bridged to P (default: RSD) in U's tunnel
//
// tunneld's /shutdown stops tunneld; ours never stops the daemon (403).
// tunneld's /upstream federates other tunnelds; we list none and add none.
// Status codes and bodies follow tunneld's, and FastAPI's for what tunneld
// leaves to it (404 and 405 as {"detail": ...}, a bad query as 422).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

import { TunnelError } from '../tunnel/errors.js';
import type { ManagedTunnel } from '../tunnel/tunnel-manager.js';
import { createGuardedServer, refuseUpgrade, type GuardedServer } from './http-guard.js';
import { sendJson } from './http-replies.js';
import { checkPort, checkUdid, findDevice, single, splitTarget, type Checked, type TunnelApiContext } from './request-params.js';
import { ConnectBridges } from './tunneld-connect.js';

/** What "interface" says of a tunnel with no kernel interface (pymobiledevice3's own says utun-userspace). */
export const USERSPACE_INTERFACE_LABEL = 'tsmuxd-userspace';

export function interfaceLabel(t: ManagedTunnel): string {
  return t.interfaceName ?? USERSPACE_INTERFACE_LABEL;
}

/** tunneld's listing of one tunnel: where RSD is, inside it. */
function listing(t: ManagedTunnel): Record<string, string | number> {
  return { 'tunnel-address': t.serverAddress, 'tunnel-port': t.serverRsdPort, interface: interfaceLabel(t) };
}

/** A query parameter FastAPI would have refused: 422 with its detail list. */
function badQuery(res: ServerResponse, name: string, why: string): void {
  sendJson(res, 422, { detail: [{ type: 'value_error', loc: ['query', name], msg: why }] });
}

function udidParam(res: ServerResponse, query: URLSearchParams): string | undefined {
  const given = single(query, 'udid');
  const udid: Checked<string> = given.ok ? checkUdid(given.value) : given;
  if (!udid.ok) {
    badQuery(res, 'udid', udid.why);
    return undefined;
  }
  return udid.value;
}

export class TunneldApi {
  readonly http: GuardedServer;
  private readonly bridges: ConnectBridges;

  constructor(private readonly ctx: TunnelApiContext) {
    this.bridges = new ConnectBridges(ctx);
    this.http = createGuardedServer({
      name: 'tunneld API',
      log: ctx.log,
      route: (req, res) => this.route(req, res),
      upgrade: (req, socket, head) => this.upgrade(req, socket, head),
    });
  }

  async close(): Promise<void> {
    this.bridges.close();
    await this.http.close();
  }

  private route(req: IncomingMessage, res: ServerResponse): void | Promise<void> {
    const { path, query } = splitTarget(req.url!);
    const known = ['/', '/hello', '/start-tunnel', '/cancel', '/clear_tunnels', '/shutdown', '/upstream', '/connect'];
    if (!known.includes(path)) return sendJson(res, 404, { detail: 'Not Found' });
    if (req.method !== 'GET') {
      // tunneld's POST and DELETE /upstream add and remove federated tunnelds.
      if (path === '/upstream') return sendJson(res, 501, { detail: 'tsmuxd does not federate tunnelds' });
      return sendJson(res, 405, { detail: 'Method Not Allowed' });
    }
    switch (path) {
      case '/':
        return sendJson(res, 200, this.listAll());
      case '/hello':
        return sendJson(res, 200, { message: "Hello, I'm alive" });
      case '/start-tunnel':
        return this.startTunnel(res, query);
      case '/cancel':
        return this.cancel(res, query);
      case '/clear_tunnels':
        for (const t of this.ctx.tunnels.list()) {
          const device = this.ctx.devices.forHandle(t.handle);
          if (device) this.ctx.tunnels.stop(device, 'cleared through the tunneld API (/clear_tunnels)');
        }
        return sendJson(res, 200, { operation: 'clear_tunnels', data: true, message: 'Cleared tunnels...' });
      case '/shutdown':
        return sendJson(res, 403, {
          operation: 'shutdown',
          data: false,
          message: 'tsmuxd is not stopped over HTTP: stop the daemon itself (tsmuxd -X), or one tunnel with /cancel?udid=UDID',
        });
      case '/upstream':
        return sendJson(res, 200, []);
      default:
        // '/connect' without an Upgrade header.
        return sendJson(res, 426, { detail: '/connect is a websocket: ask with Upgrade: websocket' });
    }
  }

  private listAll(): Record<string, Array<Record<string, string | number>>> {
    const all: Record<string, Array<Record<string, string | number>>> = {};
    for (const t of this.ctx.tunnels.list()) (all[t.udid] ??= []).push(listing(t));
    return all;
  }

  private async startTunnel(res: ServerResponse, query: URLSearchParams): Promise<void> {
    const udid = udidParam(res, query);
    if (udid === undefined) return;
    const kind = single(query, 'connection_type');
    if (!kind.ok) return badQuery(res, 'connection_type', kind.why);
    // tunneld's other kinds (usb: RSD over CDC-NCM, wifi: RemotePairing) are paths tsmuxd does not take.
    if (kind.value !== undefined && kind.value !== 'usbmux') {
      return sendJson(res, 501, { error: 'task not created', message: 'tsmuxd starts tunnels through usbmux (CoreDeviceProxy) only' });
    }
    const device = findDevice(this.ctx.devices, udid);
    if (!device) return sendJson(res, 501, { error: 'task not created', message: `no device with UDID ${udid}` });
    let t: ManagedTunnel;
    try {
      t = await this.ctx.tunnels.start(device);
    } catch (err) {
      const message = (err as Error)?.message ?? String(err);
      this.ctx.log.warning(`tunneld API: /start-tunnel of ${device.serialNumber} failed: ${message}`);
      // tunneld: no CoreDeviceProxy means no task; a task that failed, 404.
      if (err instanceof TunnelError && err.code === 'ENOCOREDEVICEPROXY') return sendJson(res, 501, { error: 'task not created', message });
      return sendJson(res, 404, { error: 'something went wrong during tunnel creation', message });
    }
    sendJson(res, 200, { interface: interfaceLabel(t), port: t.serverRsdPort, address: t.serverAddress });
  }

  private cancel(res: ServerResponse, query: URLSearchParams): void {
    const udid = udidParam(res, query);
    if (udid === undefined) return;
    const device = findDevice(this.ctx.devices, udid);
    if (device) this.ctx.tunnels.stop(device, 'cancelled through the tunneld API (/cancel)');
    sendJson(res, 200, { operation: 'cancel', udid, data: true, message: `tunnel ${udid} Canceled ...` });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { path, query } = splitTarget(req.url!);
    if (path !== '/connect') return refuseUpgrade(socket, { status: 404, why: 'only /connect is a websocket' });
    const given = single(query, 'udid');
    const udid: Checked<string> = given.ok ? checkUdid(given.value) : given;
    if (!udid.ok) return refuseUpgrade(socket, { status: 400, why: udid.why });
    const portText = single(query, 'port');
    if (!portText.ok) return refuseUpgrade(socket, { status: 400, why: portText.why });
    let port: number | undefined;
    if (portText.value !== undefined) {
      const checked = checkPort(portText.value);
      if (!checked.ok) return refuseUpgrade(socket, { status: 400, why: checked.why });
      port = checked.value;
    }
    this.bridges.accept(req, socket, head, udid.value, port);
  }
}
