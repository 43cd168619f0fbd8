// The plist requests that answer and keep the client in COMMAND state:
// device and listener lists, the host's BUID and the pair records.
import type { PlistDict } from '../pairing/plist-codec.js';
import { PairRecordError } from '../pairing/store.js';
import type { ClientSession, ServerContext } from './client-session.js';
import { Result } from './protocol.js';
import { attachedDict, plistMessage, resultMessage } from './replies.js';
import { STATS_MESSAGE, statsReply } from './stats.js';
import { EXTENSION_MESSAGES, extensionAccess, RESULT_ACCESS_DENIED } from './access.js';

export type Answer = (tag: number) => Buffer;

const result = (n: number): Answer => (tag) => resultMessage(1, tag, n);
const dict = (d: PlistDict): Answer => (tag) => plistMessage(tag, d);

/** errno for a pair-record failure: 22 for bad input, 2 for a missing record. */
function pairError(err: unknown, ctx: ServerContext, what: string): Answer {
  // usbmuxd answers 2 for a failed write too.
  if (err instanceof PairRecordError) return result(err.code === 'EIO' ? Result.ENOENT : err.errno);
  ctx.log.error(`${what} failed: ${(err as Error).message}`);
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
      const who = client.peer ? ` (pid ${client.peer.pid}, uid ${client.peer.uid})` : '';
      ctx.log.warning(`client ${client.id}${who}: ${type} refused: ${access.reason}`);
      // The client stays connected: what every user may ask still works.
      return result(RESULT_ACCESS_DENIED);
    }
  }
  switch (type) {
    case 'ListDevices':
      return dict({ DeviceList: ctx.devices.visible().map(attachedDict) });

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
      return dict({ BUID: await ctx.store.systemBUID() });

    case 'ReadPairRecord': {
      const id = recordId(request);
      if (!id) return result(Result.EINVAL);
      try {
        return dict({ PairRecordData: await ctx.store.read(id) });
      } catch (err) {
        return pairError(err, ctx, `ReadPairRecord ${id}`);
      }
    }

    case 'SavePairRecord': {
      const id = recordId(request);
      const data = request.PairRecordData;
      if (!id || !(data instanceof Uint8Array)) return result(Result.EINVAL);
      try {
        await ctx.store.save(id, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      } catch (err) {
        return pairError(err, ctx, `SavePairRecord ${id}`);
      }
      const deviceId = Number(request.DeviceID ?? 0);
      const device = deviceId > 0 ? ctx.devices.byId(deviceId) : undefined;
      if (device && device.serialNumber === id) ctx.devices.paired(deviceId);
      ctx.log.info(`client ${client.id}: saved the pair record of ${id}`);
      return result(Result.OK);
    }

    case 'DeletePairRecord': {
      const id = recordId(request);
      if (!id) return result(Result.EINVAL);
      try {
        await ctx.store.delete(id);
      } catch (err) {
        return pairError(err, ctx, `DeletePairRecord ${id}`);
      }
      return result(Result.OK);
    }

    case STATS_MESSAGE:
      try {
        return dict(statsReply(ctx.engine, ctx.devices, ctx.owners));
      } catch (err) {
        ctx.log.error(`client ${client.id}: stats failed: ${(err as Error).message}`);
        // EIO, not 1: Result 1 means "no stats here" (another daemon) to clients.
        return result(5);
      }

    default:
      ctx.log.info(`client ${client.id}: unknown MessageType '${type}'`);
      return result(Result.BADCOMMAND);
  }
}
