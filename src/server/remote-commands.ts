// Remote usbmux in the usbmuxd server (docs/remote.md): usbfluxd's
// Instances / AddInstance / RemoveInstance (only root and the daemon's user
// get this far, access.ts), a Connect to a remote phone, and the requests
// usbfluxd routes to the host that owns a phone (ReadPairRecord and the
// other pair-record requests, ReadBUID).
import type { Socket } from 'node:net';

import type { DeviceRecord } from '../devices/device-table.js';
import type { RemoteTlsPem } from '../native/addon.js';
import type { PlistDict } from '../protocol/plist-codec.js';
import { plistMessage } from '../protocol/plist-message.js';
import { ADD_INSTANCE, ADD_INSTANCE_TLS, INSTANCES, REMOVE_INSTANCE } from '../protocol/remote-messages.js';
import { Result } from '../protocol/usbmux.js';
import type { RemoteInstances } from '../remote/remote-instances.js';
import { checkPem } from '../remote/remote-tls.js';
import type { ConnectPlan } from './connect-flow.js';
import type { ClientSession, ServerContext } from './client-session.js';
import { resultMessage, type Answer } from './replies.js';

/** What the server knows of remote usbmux; the daemon loads src/remote at first use. */
export interface RemoteHooks {
  instances(): Promise<RemoteInstances>;
  /** Loaded already (a remote entry exists only then). */
  loaded(): RemoteInstances | undefined;
  /** The daemon's own TLS identity (--remote-cert/-key/-ca), for an AddInstance that names none. */
  identity?: RemoteTlsPem;
}

const result = (n: number): Answer => (tag) => resultMessage(1, tag, n);

/** HostAddress and PortNumber, as usbfluxctl sends them (the port unswapped). */
function hostAndPort(request: PlistDict): { host: string; port: number } | undefined {
  const host = request.HostAddress;
  const port = Number(request.PortNumber);
  if (typeof host !== 'string' || host.length === 0 || host.length > 253) return undefined;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}

/** AddInstance's TLS: our keys, else the daemon's identity, else plain TCP as usbfluxd means it. */
function tlsOf(request: PlistDict, hooks: RemoteHooks): RemoteTlsPem | null {
  if (request[ADD_INSTANCE_TLS.insecure] === true) return null;
  if (request[ADD_INSTANCE_TLS.cert] !== undefined || request[ADD_INSTANCE_TLS.ca] !== undefined) {
    return {
      caPem: checkPem(request[ADD_INSTANCE_TLS.ca], ADD_INSTANCE_TLS.ca),
      certPem: checkPem(request[ADD_INSTANCE_TLS.cert], ADD_INSTANCE_TLS.cert),
      keyPem: checkPem(request[ADD_INSTANCE_TLS.key], ADD_INSTANCE_TLS.key),
    };
  }
  return hooks.identity ?? null;
}

export async function handleRemoteCommand(type: string, request: PlistDict, ctx: ServerContext, client: ClientSession): Promise<Answer> {
  const hooks = ctx.remotes;
  if (!hooks) return result(Result.BADCOMMAND);
  const instances = await hooks.instances();
  if (type === INSTANCES) return (tag) => plistMessage(tag, { Instances: instances.instancesDict(request.tsmuxdAll === true) });
  const target = hostAndPort(request);
  if (!target) {
    ctx.log.info(`${client.label}: ${type} without a usable HostAddress and PortNumber`);
    return result(Result.BADCOMMAND);
  }
  if (type === REMOVE_INSTANCE) return result(instances.remove(target.host, target.port) ? Result.OK : Result.BADDEV);
  if (type !== ADD_INSTANCE) return result(Result.BADCOMMAND);
  let tls: RemoteTlsPem | null;
  try {
    tls = tlsOf(request, hooks);
  } catch (err) {
    ctx.log.info(`${client.label}: AddInstance: ${(err as Error).message}`);
    return result(Result.BADCOMMAND);
  }
  const added = instances.add(target.host, target.port, tls, client.info.progName === 'tsmuxd-remote-cli' ? 'cli' : 'usbfluxd');
  if (added.ok) return result(Result.OK);
  // usbfluxd: BADDEV for one already there; we say the same when all 255 are taken.
  ctx.log.info(`${client.label}: AddInstance ${target.host}:${target.port}: ${added.why === 'present' ? 'already present' : 'no free instance number'}`);
  return result(Result.BADDEV);
}

/** Connect to a remote host's phone: a fresh connection to that host, its bytes the data plane's. */
export function remoteConnectPlan(ctx: ServerContext, device: DeviceRecord, port: number, socket: Socket, version: number): ConnectPlan {
  const instances = ctx.remotes?.loaded();
  return {
    what: `connect to remote device ${device.deviceId} (${device.serialNumber}) port ${port}`,
    open: () => (instances ? instances.dial(device, port) : Promise.reject(new Error('remote usbmux is not loaded'))),
    adopt: (conn, pipelined) => ctx.engine.remote.attach(conn, socket, pipelined),
    abandon: (conn) => ctx.engine.closeConnection(conn),
    refused: (err) => (tag) => {
      const remote = (err as { result?: number }).result;
      return resultMessage(version, tag, typeof remote === 'number' && remote > 0 ? remote : Result.CONNREFUSED);
    },
  };
}

/**
 * A pair-record request about a remote phone, or ReadBUID while a remote
 * phone is listed first, goes to its host, as usbfluxd routes them
 * (usbmux_remote.c:300-400); undefined: answer it here.
 */
export function remoteRouteFor(type: string, request: PlistDict, ctx: ServerContext): DeviceRecord | undefined {
  if (!ctx.remotes?.loaded()) return undefined;
  if (type === 'ReadBUID') {
    const first = ctx.devices.visible()[0];
    return first?.remote ? first : undefined;
  }
  if (typeof request.PairRecordID !== 'string') return undefined;
  const d = ctx.devices.byUdid(request.PairRecordID);
  return d?.remote ? d : undefined;
}

export async function forwardToRemote(type: string, request: PlistDict, device: DeviceRecord, ctx: ServerContext, client: ClientSession): Promise<Answer> {
  const instances = ctx.remotes!.loaded()!;
  const target = instances.targetFor(device);
  if (!target) return result(Result.BADDEV);
  const extra: PlistDict = {};
  for (const key of ['PairRecordID', 'PairRecordData'] as const) if (request[key] !== undefined) extra[key] = request[key]!;
  try {
    const answer = await instances.forward(target, type, extra);
    return answer.kind === 'result' ? result(answer.result) : (tag) => plistMessage(tag, answer.dict);
  } catch (err) {
    ctx.log.info(`${client.label}: ${type} forwarded to the host of ${device.serialNumber} failed: ${(err as Error).message}`);
    return result(Result.ENOENT);
  }
}
