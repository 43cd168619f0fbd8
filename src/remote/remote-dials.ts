// A Connect to a remote host's phone (docs/remote.md): a fresh TCP
// connection per Connect, as usbfluxd opens one, whose TLS handshake, the
// Connect request and the remote's answer all run in the data plane
// (NativeEngine.dialRemote). JS reads only the answer's Result; once its own
// client has its Result, attachDialled() joins the two sockets and no byte
// of the connection enters JS.
import type { MuxEngine } from '../native/mux-engine.js';
import { remoteConnectRequest } from '../protocol/remote-messages.js';
import { decodeHeader } from '../protocol/usbmux.js';
import { decodeRemoteMessage, pausedTcp, type RemoteTarget } from './remote-wire.js';

/** A refused Connect: `result` is the remote's (or CONNREFUSED when it never answered). */
export class RemoteConnectError extends Error {
  constructor(
    message: string,
    readonly result: number,
  ) {
    super(message);
    this.name = 'RemoteConnectError';
  }
}

const CONNREFUSED = 3;

interface Waiter {
  resolve: (conn: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class RemoteDials {
  private readonly waiting = new Map<number, Waiter>();

  constructor(private readonly engine: MuxEngine) {
    engine.on('remoteReply', (conn, bytes) => this.answered(conn, bytes));
    engine.on('closed', (conn, info) => this.settle(conn, new RemoteConnectError(info.reason || 'the remote connection ended', CONNREFUSED)));
  }

  /**
   * Resolves with the connection id once the remote accepted; the caller
   * then attaches its client (MuxEngine.remote.attach) or closes it.
   * `timeoutMs` covers TCP, TLS and the remote's own connect.
   */
  async dial(target: RemoteTarget, remoteId: number, port: number, timeoutMs: number): Promise<number> {
    const started = Date.now();
    let socket;
    try {
      socket = await pausedTcp(target, timeoutMs);
    } catch (err) {
      throw new RemoteConnectError(`cannot reach the remote: ${(err as Error).message}`, CONNREFUSED);
    }
    const conn = this.engine.remote.dial(socket, target.tls, remoteConnectRequest(remoteId, port));
    const left = Math.max(1, timeoutMs - (Date.now() - started));
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(conn, new RemoteConnectError(`no answer from the remote within ${timeoutMs} ms`, CONNREFUSED));
        this.engine.closeConnection(conn);
      }, left);
      this.waiting.set(conn, { resolve, reject, timer });
    });
  }

  private answered(conn: number, bytes: Buffer): void {
    const w = this.waiting.get(conn);
    if (!w) {
      this.engine.closeConnection(conn);  // nobody waits for it any more
      return;
    }
    let result: number;
    try {
      const m = decodeRemoteMessage({ header: decodeHeader(bytes), body: bytes.subarray(16) });
      if (m.kind !== 'result') throw new Error(`a ${String(m.dict.MessageType)} message`);
      result = m.result;
    } catch (err) {
      this.engine.closeConnection(conn);
      this.settle(conn, new RemoteConnectError(`the remote answered the Connect with ${(err as Error).message}`, CONNREFUSED));
      return;
    }
    if (result !== 0) {
      this.engine.closeConnection(conn);
      this.settle(conn, new RemoteConnectError(`the remote answered ${result}`, result));
      return;
    }
    this.waiting.delete(conn);
    clearTimeout(w.timer);
    w.resolve(conn);
  }

  private settle(conn: number, err: Error): void {
    const w = this.waiting.get(conn);
    if (!w) return;
    this.waiting.delete(conn);
    clearTimeout(w.timer);
    w.reject(err);
  }
}
