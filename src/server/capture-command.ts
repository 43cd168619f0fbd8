// The capture request (docs/capture.md): who may ask (the daemon's user and
// root, as for the stats: a capture holds pair-record traffic and the
// session keys), what it asks for, and the socket handed to the data plane,
// which writes pcapng to it until the client half-closes it or leaves.
import { takeSocket } from '../native/socket-handover.js';
import { MAX_CAPTURE_RING_BYTES, MIN_CAPTURE_RING_BYTES } from '../protocol/capture.js';
import type { PlistDict } from '../protocol/plist-codec.js';
import { Result } from '../protocol/usbmux.js';
import { extensionAccess, RESULT_ACCESS_DENIED } from './access.js';
import type { ClientSession, ServerContext } from './client-session.js';
import { resultMessage } from './replies.js';

type Options = { udid?: string; port?: number; ringBytes?: number };

function integer(v: unknown): number | undefined {
  const n = typeof v === 'bigint' ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) ? n : undefined;
}

/** The request's options, or why they are refused. */
export function captureOptions(request: PlistDict): Options | string {
  const out: Options = {};
  if (request.UDID !== undefined) {
    if (typeof request.UDID !== 'string' || request.UDID.length === 0 || request.UDID.length > 64) return 'UDID is not a UDID';
    out.udid = request.UDID;
  }
  if (request.Port !== undefined) {
    const port = integer(request.Port);
    if (port === undefined || port < 1 || port > 65535) return 'Port is not in 1..65535';
    out.port = port;
  }
  if (request.RingBytes !== undefined) {
    const ring = integer(request.RingBytes);
    if (ring === undefined || ring < MIN_CAPTURE_RING_BYTES || ring > MAX_CAPTURE_RING_BYTES) {
      return `RingBytes is not in ${MIN_CAPTURE_RING_BYTES}..${MAX_CAPTURE_RING_BYTES}`;
    }
    out.ringBytes = ring;
  }
  return out;
}

/**
 * Answers the request; on success the client's socket belongs to the data
 * plane from here and the session is over for JS. `done` marks the session
 * handed over.
 */
export async function startCapture(client: ClientSession, tag: number, request: PlistDict, ctx: ServerContext, done: () => void): Promise<void> {
  const access = extensionAccess(client.peer);
  if (!access.allowed) {
    ctx.log.warning(`${client.label}: capture refused: ${access.reason}`);
    client.send(resultMessage(client.version, tag, RESULT_ACCESS_DENIED));
    return;
  }
  const options = captureOptions(request);
  if (typeof options === 'string') {
    ctx.log.info(`${client.label}: capture refused: ${options}`);
    client.send(resultMessage(client.version, tag, Result.BADCOMMAND));
    return;
  }
  const { udid, port, ringBytes } = options;
  const socket = client.socket;
  const written = await new Promise<boolean>((resolve) => socket.write(resultMessage(client.version, tag, Result.OK), (err) => resolve(!err)));
  if (!written || socket.destroyed) return;
  const handover = takeSocket(socket);
  const { id, ended } = ctx.engine.captures.start(handover.fd, { udid, port, ringBytes });
  socket.removeAllListeners('data');
  socket.destroy();  // node's copy of the fd only
  done();
  const what = [udid && `UDID ${udid}`, port && `port ${port}`].filter(Boolean).join(', ') || 'everything';
  ctx.log.info(`${client.label}: capture ${id} started (${what})`);
  // Settles only by resolving (the engine's captureEnded, or its close).
  ended.then((end) => {
    const line = `capture ${id} ended: ${end.reason}; ${end.packets} packets, ${end.bytes} bytes, ${end.dropped} dropped`;
    if (end.code) ctx.log.warning(`${client.label}: ${line}`);
    else ctx.log.info(`${client.label}: ${line}`);
  }, () => undefined);
}
