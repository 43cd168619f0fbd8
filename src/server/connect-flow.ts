// A Connect request, from the request to the socket living in native code.
//
// Reading is stopped for the whole connect (the session stopped it before
// serving), so what the client sends behind the request waits in the kernel
// and reaches native code with the fd. Only the rest of the read that carried
// the request (at most 64 KiB) is held here.
//
// Two ways through:
// - handed over at once (a mux connection): the socket's fd and early bytes
//   go to the data plane with the request, together with the Result it will
//   write when the device accepts. The client then gets its Result and its
//   first bytes from the event thread, with no turn through JS in between:
//   one thread hop fewer per Connect, and no write from JS.
// - handed over after the Result (a tunnel stream, or a session with replies
//   still unwritten): JS writes the Result and then hands the socket over.
// JS decides either way: whether to connect, where, and what the Result says.
import type { Socket } from 'node:net';

import { takeSocket, type Handover } from '../native/socket-handover.js';
import { Result } from '../protocol/usbmux.js';
import { resultMessage, type Answer } from './replies.js';

/** How one connect request opens its connection and hands the client's socket over. */
export interface ConnectPlan {
  /** For log lines: "connect to device 3 port 62078". */
  what: string;
  /** Resolves with the connection (or tunnel stream) id once the device accepted. */
  open: () => Promise<number>;
  /** Hands the socket over; may return the id the connection goes by from then on. */
  adopt: (conn: number, pipelined: Buffer) => number | void;
  /** What ends an opened connection nobody adopted (closeConnection when absent). */
  abandon?: (conn: number) => void;
  /**
   * Opens with the socket handed over first: the data plane writes `result`
   * when the device accepts. Absent where the data plane cannot (tunnels).
   */
  openHandingOver?: (handover: Handover, result: Buffer) => Promise<number>;
  /** The answer to a failed open. */
  refused: (err: unknown) => Answer;
}

/** What the connect flow needs of a client session. */
export interface ConnectingClient {
  readonly socket: Socket;
  readonly label: string;
  /** The protocol version the Result is written in. */
  readonly version: number;
  state: 'command' | 'listen' | 'connecting' | 'connected' | 'closed';
  /** Replies the kernel has not taken yet. */
  readonly unwrittenReplies: number;
  /** Bytes the framer holds behind the request (emptied). */
  takeRemainder(): Buffer;
  /** Bytes that turned out to be commands after all (the connect failed). */
  pushBack(bytes: Buffer): void;
  send(bytes: Buffer): void;
  log: { debug(text: string): void; info(text: string): void; error(text: string): void };
  /** The connection is the client's now: record it, and forget the session. */
  connected(conn: number): void;
  closeConnection(conn: number): void;
}

export async function connectThrough(client: ConnectingClient, tag: number, how: ConnectPlan): Promise<void> {
  client.state = 'connecting';
  const pipelined = client.takeRemainder();
  if (how.openHandingOver && client.unwrittenReplies === 0 && client.socket.writableLength === 0) {
    let handover: Handover | undefined;
    try {
      handover = takeSocket(client.socket, pipelined);
    } catch {
      // no fd (destroyed meanwhile): the path below finds that out and says so
    }
    if (handover) return handingOverFirst(client, tag, how, handover);
  }
  return resultFirst(client, tag, how, pipelined);
}

async function handingOverFirst(client: ConnectingClient, tag: number, how: ConnectPlan, handover: Handover): Promise<void> {
  let conn: number;
  try {
    conn = await how.openHandingOver!(handover, resultMessage(client.version, tag, Result.OK));
  } catch (err) {
    failed(client, tag, how, err, handover.early ?? Buffer.alloc(0));
    return;
  }
  // The data plane has answered and owns the client now, whatever happened
  // to our socket object meanwhile.
  client.connected(conn);
  client.socket.removeAllListeners('data');
  client.socket.destroy();  // node's copy of the fd only
}

async function resultFirst(client: ConnectingClient, tag: number, how: ConnectPlan, pipelined: Buffer): Promise<void> {
  let conn: number;
  try {
    conn = await how.open();
  } catch (err) {
    failed(client, tag, how, err, pipelined);
    return;
  }
  const abandon = () => (how.abandon ? how.abandon(conn) : client.closeConnection(conn));
  if (client.state !== 'connecting' || client.socket.destroyed) {
    abandon();  // the client left while we connected
    return;
  }
  client.socket.write(resultMessage(client.version, tag, Result.OK), (err) => {
    if (err || client.state !== 'connecting') {
      abandon();
      return;
    }
    client.socket.removeAllListeners('data');
    let id = conn;
    try {
      id = how.adopt(conn, pipelined) ?? conn;
    } catch (adoptErr) {
      client.log.error(`${client.label}: handing the socket over failed: ${(adoptErr as Error).message}`);
      abandon();
      client.socket.destroy();
    }
    client.connected(id);
  });
}

function failed(client: ConnectingClient, tag: number, how: ConnectPlan, err: unknown, unread: Buffer): void {
  if (client.state !== 'connecting') {
    client.log.debug(`${client.label}: ${how.what} ended after the client left: ${(err as Error).message}`);
    return;
  }
  client.log.info(`${client.label}: ${how.what} failed: ${(err as Error).message}`);
  client.state = 'command';
  client.send(how.refused(err)(tag));
  // The connect failed, so what the client sent behind it are commands after all.
  client.pushBack(unread);
}

/** The Result for a failed connect: BADDEV when the device went away, else CONNREFUSED. */
export function connectRefusal(err: unknown): number {
  return (err as { code?: string } | undefined)?.code === 'ENODEV' ? Result.BADDEV : Result.CONNREFUSED;
}
