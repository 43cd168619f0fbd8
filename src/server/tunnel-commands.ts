// The tunnel requests (docs/server.md, "Tunnels"): TunnelStart, TunnelList
// and TunnelStop answer and keep the client in COMMAND state; TunnelConnect
// is checked here and then runs the Connect path in client-session.ts, so a
// client's socket goes to native code exactly as after a mux Connect. Every
// reply is a Result dictionary; a failure carries an Error string that says
// why, and is logged with the client's label.
import type { Socket } from 'node:net';

import type { DeviceRecord } from '../devices/device-table.js';
import { NativeError } from '../native/addon.js';
import type { PlistDict } from '../protocol/plist-codec.js';
import { plistMessage } from '../protocol/plist-message.js';
import { TUNNEL_LIST, TUNNEL_START, TUNNEL_STOP, tunnelDict, TunnelResult } from '../protocol/tunnel-messages.js';
import { TunnelError, type TunnelErrorCode } from '../tunnel/errors.js';
import type { ClientSession, ConnectPlan, ServerContext } from './client-session.js';
import type { Answer } from './replies.js';

export const tunnelReply =
  (number: number, extra: PlistDict = {}): Answer =>
  (tag) =>
    plistMessage(tag, { MessageType: 'Result', Number: number, ...extra });

const failure = (number: number, error: string): Answer => tunnelReply(number, { Error: error });

const RESULT_OF: Record<TunnelErrorCode, number> = {
  ENOCOREDEVICEPROXY: TunnelResult.EOPNOTSUPP,
  ENOTPAIRED: TunnelResult.EIO,
  ENOTUNNEL: TunnelResult.ENOTCONN,
  ENODEV: TunnelResult.BADDEV,
  EINVAL: TunnelResult.EINVAL,
  EPROTO: TunnelResult.EIO,
};

/** The device a request names by DeviceID or UDID, or the BADDEV answer. */
function deviceOf(request: PlistDict, ctx: ServerContext): DeviceRecord | Answer {
  const id = request.DeviceID;
  const udid = request.UDID;
  if (typeof id === 'number' || typeof id === 'bigint') {
    const d = ctx.devices.byId(Number(id));
    if (d?.remote) return failure(TunnelResult.BADDEV, `device ${id} is a remote host's; start its tunnel on that host`);
    // CoreDeviceProxy runs over the mux; a Wi-Fi entry has none here.
    if (d?.connectionType === 'Network') return failure(TunnelResult.BADDEV, `device ${id} is a network entry; tunnels go over its USB entry`);
    return d ?? failure(TunnelResult.BADDEV, `no device with DeviceID ${id}`);
  }
  if (typeof udid === 'string') {
    const d = ctx.devices.byUdid(udid);
    if (d?.remote) return failure(TunnelResult.BADDEV, `${udid} is a remote host's; start its tunnel on that host`);
    if (d?.connectionType === 'Network') return failure(TunnelResult.BADDEV, `${udid} is on the network only; tunnels go over USB`);
    return d ?? failure(TunnelResult.BADDEV, `no device with UDID ${udid}`);
  }
  return failure(TunnelResult.BADDEV, 'the request names no device (DeviceID or UDID)');
}

function optionalInteger(request: PlistDict, key: string): number | undefined | Answer {
  const v = request[key];
  if (v === undefined) return undefined;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) return failure(TunnelResult.EINVAL, `${key} is not an integer`);
  return n;
}

const isAnswer = (v: unknown): v is Answer => typeof v === 'function';

/** TunnelStart, TunnelList, TunnelStop. */
export async function handleTunnelCommand(type: string, request: PlistDict, ctx: ServerContext, client: ClientSession): Promise<Answer> {
  if (type === TUNNEL_LIST) return tunnelReply(TunnelResult.OK, { TunnelList: ctx.tunnels.list().map(tunnelDict) });
  const device = deviceOf(request, ctx);
  if (isAnswer(device)) return device;
  if (type === TUNNEL_STOP) {
    if (ctx.tunnels.stop(device, `stopped by ${client.label}`)) return tunnelReply(TunnelResult.OK);
    return failure(TunnelResult.ENOTCONN, `device ${device.deviceId} (${device.serialNumber}) has no tunnel`);
  }
  if (type !== TUNNEL_START) throw new Error(`not a tunnel request: ${type}`);
  const sendMss = optionalInteger(request, 'SendMSS');
  if (isAnswer(sendMss)) return sendMss;
  try {
    const t = await ctx.tunnels.start(device, { sendMss });
    return tunnelReply(TunnelResult.OK, { Tunnel: tunnelDict(t) });
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    ctx.log.warning(`${client.label}: TunnelStart of ${device.serialNumber} failed: ${message}`);
    return failure(err instanceof TunnelError ? RESULT_OF[err.code] : TunnelResult.EIO, message);
  }
}

/**
 * A TunnelConnect's plan for the Connect path (its device, port and the
 * device's own tunnel address unless Address names another), or the answer
 * that refuses it.
 */
export function tunnelConnectPlan(request: PlistDict, ctx: ServerContext, socket: Socket): ConnectPlan | Answer {
  const device = deviceOf(request, ctx);
  if (isAnswer(device)) return device;
  const port = optionalInteger(request, 'Port');
  if (isAnswer(port)) return port;
  if (port === undefined || port < 1 || port > 65535) return failure(TunnelResult.EINVAL, 'Port is not in 1..65535');
  const address = request.Address;
  if (address !== undefined && typeof address !== 'string') return failure(TunnelResult.EINVAL, 'Address is not a string');
  const tunnel = ctx.tunnels.find(device);
  if (!tunnel) return failure(TunnelResult.ENOTCONN, `device ${device.deviceId} (${device.serialNumber}) has no tunnel; TunnelStart first`);
  return {
    what: `tunnel connect to device ${device.deviceId} [${address ?? tunnel.serverAddress}]:${port}`,
    open: () => ctx.tunnels.connect(device, port, address),
    adopt: (stream, pipelined) => ctx.engine.attachTunnelClient(stream, socket, pipelined),
    refused: tunnelConnectFailure,
  };
}

/** Why a TunnelConnect failed: refused or timed out inside the tunnel (CONNREFUSED), or ours. */
function tunnelConnectFailure(err: unknown): Answer {
  const message = (err as Error)?.message ?? String(err);
  if (err instanceof TunnelError) return failure(RESULT_OF[err.code], message);
  if (err instanceof NativeError && err.code === 'ENODEV') return failure(TunnelResult.BADDEV, message);
  return failure(TunnelResult.CONNREFUSED, message);
}
