// Who may use tsmuxd's own extension requests (the stats, the tunnel list,
// stopping a tunnel): the socket is 0666 so that every user's tools can list
// and connect to phones, as with usbmuxd, but the stats reveal other users'
// connections and programs, and a tunnel stopped is stopped for everyone.
// TunnelStart and TunnelConnect stay open, as Connect is: they reach a phone. The
// kernel tells us who connected (SO_PEERCRED, read once at accept); the
// daemon's own user and root may ask, nobody else. A TCP client carries no
// credentials and is refused.
import type { Socket } from 'node:net';

import { native, type PeerCredentials } from '../native/addon.js';
import { REMOTE_MESSAGES } from '../protocol/remote-messages.js';
import { TUNNEL_LIST, TUNNEL_STOP } from '../protocol/tunnel-messages.js';

/**
 * The plist MessageTypes the check guards: our own, and usbfluxd's instance
 * messages, since adding or removing a remote host changes what every
 * local client sees (docs/remote.md).
 */
export const EXTENSION_MESSAGES: ReadonlySet<string> = new Set(['tsmuxdStats', TUNNEL_LIST, TUNNEL_STOP, ...REMOTE_MESSAGES]);

/**
 * What a remote host's client (--remote-listen) may do with pair records:
 * read them (the default, so a compromised CI runner cannot re-pair a
 * phone), read and write them, or neither.
 */
export type PairRecordPolicy = 'read-only' | 'read-write' | 'none';
export const PAIR_RECORD_POLICIES: readonly PairRecordPolicy[] = ['read-only', 'read-write', 'none'];

/** A remote client's request that the policy refuses, with why; undefined when allowed. */
export function remotePolicyRefusal(type: string, policy: PairRecordPolicy): string | undefined {
  if ((type === 'SavePairRecord' || type === 'DeletePairRecord') && policy !== 'read-write') {
    return `remote clients may not change pair records (--remote-pair-records ${policy})`;
  }
  if (type === 'ReadPairRecord' && policy === 'none') return 'remote clients may not read pair records (--remote-pair-records none)';
  return undefined;
}

/** EACCES: a refused extension request's Result (1 would mean "not tsmuxd" to clients). */
export const RESULT_ACCESS_DENIED = 13;

/** The connecting process's pid/uid/gid, or undefined for a socket without them (TCP). */
export function peerCredentialsOf(socket: Socket): PeerCredentials | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return native.peerCredentials(fd);
  } catch {
    return undefined;
  }
}

export type AccessDecision = { allowed: true } | { allowed: false; reason: string };

/** Same user as the daemon (its uid now, after -U), or root. */
export function extensionAccess(peer: PeerCredentials | undefined, daemonUid = process.getuid?.() ?? 0): AccessDecision {
  if (!peer) return { allowed: false, reason: 'the connection carries no peer credentials (not a Unix socket)' };
  if (peer.uid === daemonUid || peer.uid === 0) return { allowed: true };
  return { allowed: false, reason: `uid ${peer.uid} is neither the daemon's user (uid ${daemonUid}) nor root` };
}
