// go-ios's tunnel agent API (ios/tunnel/tunnel_api.go), answered from the
// daemon's tunnels, so go-ios commands that look for `ios tunnel start`'s
// agent (TunnelInfoForDevice, ListRunningTunnels, IsAgentRunning) find
// tsmuxd's tunnels instead:
//
//   GET    /health          200 while we serve (IsAgentRunning)
//   GET    /ready           200: the daemon's tunnels are already known when this listens
//   GET    /tunnels         [Tunnel, ...]
//   GET    /tunnel/{udid}   Tunnel, or 404 "tunnel not found"
//   DELETE /tunnel/{udid}   204, or 404 "tunnel not found"
//   GET    /shutdown        go-ios's agent exits; the daemon does not (403)
//
// Tunnel is go-ios's struct as JSON: address (the device's, inside the
// tunnel), rsdPort, udid, userspaceTun and userspaceTunPort. go-ios dials
// userspaceTunPort on its agent's host (GO_IOS_AGENT_HOST, 127.0.0.1) with
// its 20-byte preamble when userspaceTun is true, and the address directly
// when it is false. Errors are Go's http.Error text; other methods 405
// with no body, as go-ios's handlers answer.
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { ManagedTunnel } from '../tunnel/tunnel-manager.js';
import { createGuardedServer, type GuardedServer } from './http-guard.js';
import { sendEmpty, sendJson, sendText } from './http-replies.js';
import { checkUdid, findTunnel, splitTarget, type TunnelApiContext } from './request-params.js';

/** go-ios's ErrTunnelNotFound text. */
const TUNNEL_NOT_FOUND = 'tunnel not found';
const TUNNEL_PREFIX = '/tunnel/';

export interface GoIosTunnel {
  address: string;
  rsdPort: number;
  udid: string;
  userspaceTun: boolean;
  userspaceTunPort: number;
}

export function goIosTunnel(t: ManagedTunnel): GoIosTunnel {
  return {
    address: t.serverAddress,
    rsdPort: t.serverRsdPort,
    udid: t.udid,
    userspaceTun: t.mode === 'userspace',
    // go-ios reads it only when userspaceTun is true; with a TUN tunnel the preamble listener is there all the same.
    userspaceTunPort: t.preamblePort,
  };
}

export class GoIosApi {
  readonly http: GuardedServer;

  constructor(private readonly ctx: TunnelApiContext) {
    this.http = createGuardedServer({ name: 'go-ios API', log: ctx.log, route: (req, res) => this.route(req, res) });
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    const { path } = splitTarget(req.url!);
    if (path.startsWith(TUNNEL_PREFIX)) return this.tunnel(req, res, path.slice(TUNNEL_PREFIX.length));
    const get = req.method === 'GET';
    switch (path) {
      case '/health':
      case '/ready':
        return sendEmpty(res, get ? 200 : 405);
      case '/tunnels':
        if (!get) return sendEmpty(res, 405);
        return sendJson(res, 200, this.ctx.tunnels.list().map(goIosTunnel), true);
      case '/shutdown':
        if (!get) return sendEmpty(res, 405);
        return sendText(res, 403, 'tsmuxd is not stopped over HTTP: stop the daemon itself (tsmuxd -X), or one tunnel with DELETE /tunnel/UDID');
      default:
        // Go's ServeMux text for a path it has no handler for.
        return sendText(res, 404, '404 page not found');
    }
  }

  private tunnel(req: IncomingMessage, res: ServerResponse, rawUdid: string): void {
    if (rawUdid.length === 0) return sendText(res, 400, 'missing udid');
    const udid = checkUdid(rawUdid);
    if (!udid.ok) return sendText(res, 400, udid.why);
    if (req.method !== 'GET' && req.method !== 'DELETE') return sendEmpty(res, 405);
    const found = findTunnel(this.ctx.tunnels, this.ctx.devices, udid.value);
    if (!found) return sendText(res, 404, TUNNEL_NOT_FOUND);
    if (req.method === 'GET') return sendJson(res, 200, goIosTunnel(found.tunnel), true);
    this.ctx.tunnels.stop(found.device, 'stopped through the go-ios API (DELETE /tunnel)');
    sendEmpty(res, 204);
  }
}
