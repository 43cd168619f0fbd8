// The plist requests that answer and keep the client in COMMAND state:
// device and listener lists, the host's BUID and the pair records.
import type { PlistDict } from '../protocol/plist-codec.js';
import { PairRecordError } from '../pairing/store.js';
import type { ClientSession, ServerContext } from './client-session.js';
import { Result } from '../protocol/usbmux.js';
import { plistMessage } from '../protocol/plist-message.js';
import { attachedDict, resultMessage, type Answer } from './replies.js';
import { STATS_MESSAGE } from '../protocol/stats.js';
import { statsReply } from './stats.js';
import { EXTENSION_MESSAGES, extensionAccess, remotePolicyRefusal, RESULT_ACCESS_DENIED } from './access.js';
import { REMOTE_MESSAGES } from '../protocol/remote-messages.js';
import { forwardToRemote, handleRemoteCommand, remoteRouteFor } from './remote-commands.js';
import { TUNNEL_MESSAGES } from '../protocol/tunnel-messages.js';
import { handleTunnelCommand } from './tunnel-commands.js';
import { layoutForClient } from '../protocol/network-address.js';


/**
 * The daemon could not do what was asked (a store it cannot read, the data
 * plane not answering, a handler that threw). Not 1: to a client, Result 1
 * means the daemon does not know the request.
 */
export const RESULT_EIO = 5;

const result = (n: number): Answer => (tag) => resultMessage(1, tag, n);
const dict = (d: PlistDict): Answer => (tag) => plistMessage(tag, d);

/** errno for a pair-record failure: 22 for bad input, 2 for a missing record. */
function pairError(err: unknown, ctx: ServerContext, client: ClientSession, what: string): Answer {
  const message = `${client.label}: ${what} failed: ${(err as Error)?.message ?? String(err)}`;
  if (err instanceof PairRecordError) {
    // A missing record or a bad id is the client's business; anything else
    // (corrupt, unreadable, a full disk) is the host's, and logged as such.
    if (err.code === 'EIO') ctx.log.error(message);
    else ctx.log.debug(message);
    // usbmuxd answers 2 for a failed write too.
    return result(err.code === 'EIO' ? Result.ENOENT : err.errno);
  }
  ctx.log.error(message);
  return result(Result.ENOENT);
}

function recordId(request: PlistDict): string | null {
  return typeof request.PairRecordID === 'string' ? request.PairRecordID : null;
}

export async function handlePlistCommand(
  type: string,
  request: PlistDict,
  ctx: ServerContext,
  client: ClientSession,
): Promise<Answer> {
  if (EXTENSION_MESSAGES.has(type)) {
    const access = extensionAccess(client.peer);
    if (!access.allowed) {
      ctx.log.warning(`${client.label}: ${type} refused: ${access.reason}`);
      // The client stays connected: what every user may ask still works.
      return result(RESULT_ACCESS_DENIED);
    }
  }
  const refusal = client.origin && remotePolicyRefusal(type, client.origin.pairRecords);
  if (refusal) {
    ctx.log.warning(`${client.label}: ${type} refused: ${refusal}`);
    return result(RESULT_ACCESS_DENIED);
  }
  if (TUNNEL_MESSAGES.has(type)) return handleTunnelCommand(type, request, ctx, client);
  if (REMOTE_MESSAGES.has(type)) return handleRemoteCommand(type, request, ctx, client);
  const remote = remoteRouteFor(type, request, ctx);
  if (remote) return forwardToRemote(type, request, remote, ctx, client);
  switch (type) {
    case 'ListDevices':
    {
      const layout = layoutForClient(client.info);
      return dict({ DeviceList: ctx.devices.visible().map((d) => attachedDict(d, layout)) });
    }

    case 'ListListeners':
      return dict({
        ListenerList: ctx.listeners().map((l) => {
          const entry: PlistDict = {
            Blacklisted: false,
            ConnType: 0,
            // usbmuxd fills this from the requesting client; each listener's own id is right.
            'ID String': `${l.id}-${l.info.progName ?? 'unknown'}`,
            ProgName: l.info.progName ?? 'unknown',
            kLibUSBMuxVersion: l.info.libusbmuxVersion ?? 0,
          };
          if (l.info.bundleId) entry.BundleID = l.info.bundleId;
          return entry;
        }),
      });

    case 'ReadBUID':
      try {
        return dict({ BUID: await ctx.store.systemBUID() });
      } catch (err) {
        // The store's message names the file and what is wrong with it. No
        // new BUID is made over an unreadable one: it would orphan every
        // existing pairing.
        ctx.log.error(`${client.label}: ReadBUID failed: ${(err as Error).message}`);
        return result(RESULT_EIO);
      }

    case 'ReadPairRecord': {
      const id = recordId(request);
      if (!id) return result(Result.EINVAL);
      try {
        return dict({ PairRecordData: await ctx.store.read(id) });
      } catch (err) {
        return pairError(err, ctx, client, `ReadPairRecord ${id}`);
      }
    }

    case 'SavePairRecord': {
      const id = recordId(request);
      const data = request.PairRecordData;
      if (!id || !(data instanceof Uint8Array)) return result(Result.EINVAL);
      try {
        await ctx.store.save(id, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      } catch (err) {
        return pairError(err, ctx, client, `SavePairRecord ${id}`);
      }
      const deviceId = Number(request.DeviceID ?? 0);
      const device = deviceId > 0 ? ctx.devices.byId(deviceId) : undefined;
      if (device && device.serialNumber === id) ctx.devices.paired(deviceId);
      ctx.log.info(`${client.label}: saved the pair record of ${id}`);
      return result(Result.OK);
    }

    case 'DeletePairRecord': {
      const id = recordId(request);
      if (!id) return result(Result.EINVAL);
      try {
        await ctx.store.delete(id);
      } catch (err) {
        return pairError(err, ctx, client, `DeletePairRecord ${id}`);
      }
      return result(Result.OK);
    }

    case STATS_MESSAGE:
      try {
        return dict(await statsReply(ctx.engine, ctx.devices, ctx.owners));
      } catch (err) {
        ctx.log.error(`${client.label}: stats failed: ${(err as Error).message}`);
        // EIO, not 1: Result 1 means "no stats here" (another daemon) to clients.
        return result(RESULT_EIO);
      }

    default:
      ctx.log.info(`${client.label}: unknown MessageType '${type}'`);
      return result(Result.BADCOMMAND);
  }
}
