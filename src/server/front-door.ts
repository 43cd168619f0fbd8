// Clients from the native front door (native/engine/client_door.h): the data
// plane accepts them and reads their first message, and they arrive here as
// one event with the fd. A Connect, the request most clients open a
// connection for, is decided right here: no net.Socket, stream or read of
// ours is ever made for it, and the data plane writes its Result. Anything
// else (and a Connect that fails) becomes a ClientSession on the fd, which
// serves that first message as if it had read it itself.
import type { ClientArrival } from '../native/addon.js';
import {
  decodeConnectBinary,
  decodeHeader,
  HEADER_SIZE,
  MessageType,
  ProtocolVersion,
  Result,
  swapPort,
} from '../protocol/usbmux.js';
import type { DeviceRecord } from '../devices/device-table.js';
import { parseRequestPlist } from './flat-request.js';
import { resultMessage } from './replies.js';
import { connectRefusal } from './connect-flow.js';
import type { ServerContext } from './client-session.js';

/** A Connect the door can start without a session: the device exists and the port is not 0. */
export interface DoorConnect {
  device: DeviceRecord;
  port: number;
  tag: number;
  version: number;
  progName?: string;
  bundleId?: string;
}

/**
 * The Connect in a whole first message, when it is one the data plane can
 * open straight away; undefined for anything else, which a session serves
 * (and answers: bad devices, port 0, unparsable bodies, other requests).
 */
export function doorConnect(arrival: ClientArrival, ctx: ServerContext): DoorConnect | undefined {
  if (!arrival.complete || arrival.bytes.length < HEADER_SIZE) return undefined;
  const header = decodeHeader(arrival.bytes);
  const body = arrival.bytes.subarray(HEADER_SIZE, header.length);
  let deviceId: number;
  let port: number;
  let progName: string | undefined;
  let bundleId: string | undefined;
  if (header.version === ProtocolVersion.Binary && header.message === MessageType.Connect) {
    if (body.length < 6) return undefined;
    ({ deviceId, port } = decodeConnectBinary(body));
  } else if (header.version === ProtocolVersion.Plist && header.message === MessageType.Plist) {
    let request;
    try {
      request = parseRequestPlist(body);
    } catch {
      return undefined;
    }
    if (!request || typeof request !== 'object' || Array.isArray(request) || Buffer.isBuffer(request)) return undefined;
    const dict = request as Record<string, unknown>;
    if (dict.MessageType !== 'Connect') return undefined;
    if (typeof dict.DeviceID !== 'number' || typeof dict.PortNumber !== 'number') return undefined;
    deviceId = dict.DeviceID;
    port = swapPort(dict.PortNumber & 0xffff);
    if (typeof dict.ProgName === 'string') progName = dict.ProgName;
    if (typeof dict.BundleID === 'string') bundleId = dict.BundleID;
  } else {
    return undefined;
  }
  const device = ctx.devices.byId(deviceId);
  // A network entry's or a remote host's Connect is a TCP connection the session path makes.
  if (!device || port === 0 || device.connectionType === 'Network' || device.remote) return undefined;
  return { device, port, tag: header.tag, version: header.version, progName, bundleId };
}

/**
 * Opens the connection with the client's fd given to the data plane, which
 * answers the client itself when the device accepts; nothing more of it
 * comes back to JS then. If the connect fails, `refused` gets the fd back
 * with the Result to answer.
 */
export function connectAtTheDoor(
  arrival: ClientArrival,
  c: DoorConnect,
  ctx: ServerContext,
  clientId: number,
  refused: (result: number, reason: string, fd: number) => void,
): void {
  let conn: number;
  try {
    conn = ctx.engine.connectTakingFd(c.device.handle, c.port, arrival.fd, resultMessage(c.version, c.tag, Result.OK), (err, fd) => {
      ctx.owners.delete(conn);
      refused(connectRefusal(err), err.message, fd);
    });
  } catch (err) {
    refused(connectRefusal(err), (err as Error).message, arrival.fd);  // the fd is still ours
    return;
  }
  ctx.owners.set(conn, { client: clientId, progName: c.progName, bundleId: c.bundleId });
}
