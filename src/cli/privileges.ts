// -U: the daemon binds its socket and opens USB as root, then becomes USER
// for good. "For good" is checked, not assumed: a daemon that could still
// regain root after the drop refuses to run.
import { existsSync, readdirSync, readFileSync } from 'node:fs';

export class PrivilegeError extends Error {
  readonly code: 'ENOUSER' | 'EPERM' | 'EREGAIN';
  constructor(code: PrivilegeError['code'], message: string) {
    super(message);
    this.name = 'PrivilegeError';
    this.code = code;
  }
}

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** USER's entry in /etc/passwd (what getpwnam reads on a system without NSS modules). */
export function lookupAccount(name: string, passwd = '/etc/passwd'): Account {
  for (const line of readFileSync(passwd, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || f[0] !== name) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === '' || f[3] === '') {
      throw new PrivilegeError('ENOUSER', `the /etc/passwd entry of ${name} has no numeric uid/gid`);
    }
    return { name, uid, gid };
  }
  throw new PrivilegeError('ENOUSER', `no such user: ${name}`);
}

type Credentials = {
  initgroups?: (user: string, gid: number) => void;
  getgroups?: () => number[];
};

/**
 * Becomes `account`: supplementary groups first (they need root), then the
 * gid, then the uid, since setuid as root sets the real, effective and saved
 * ids together and leaves nothing to set the others with. glibc applies
 * each call to every thread, the addon's and libuv's included.
 */
export function dropPrivileges(account: Account): void {
  const proc = process as typeof process & Credentials;
  if (process.getuid?.() !== 0) {
    if (process.getuid?.() === account.uid) return;
    throw new PrivilegeError('EPERM', `-U ${account.name} needs root; running as uid ${process.getuid?.()}`);
  }
  proc.initgroups?.(account.name, account.gid);
  process.setgid?.(account.gid);
  process.setuid?.(account.uid);
  assertCannotRegainRoot(account);
}

function assertCannotRegainRoot(account: Account): void {
  const ids = [process.getuid?.(), process.geteuid?.(), process.getgid?.(), process.getegid?.()];
  if (ids.join() !== [account.uid, account.uid, account.gid, account.gid].join()) {
    throw new PrivilegeError('EREGAIN', `after the drop to ${account.name} the ids are ${ids.join('/')}`);
  }
  if (account.uid === 0) return;  // -U root: nothing was dropped, nothing to regain
  const attempts = [() => process.setuid?.(0), () => process.seteuid?.(0)];
  // A user whose own group is root's keeps gid 0 by right; that is no way back.
  if (account.gid !== 0) attempts.push(() => process.setgid?.(0));
  for (const attempt of attempts) {
    let regained = true;
    try {
      attempt();
    } catch {
      regained = false;
    }
    if (regained) throw new PrivilegeError('EREGAIN', `after the drop to ${account.name} the process could become root again`);
  }
  // A thread left with root's ids would be a way back; glibc should have
  // moved them all, and /proc lets us check rather than trust it.
  if (!existsSync('/proc/self/task')) return;
  for (const thread of threadCredentials('self')) {
    const stray = thread.uids.some((id) => id !== account.uid) || thread.gids.some((id) => id !== account.gid);
    if (stray || !/^0+$/.test(thread.capEff)) {
      throw new PrivilegeError('EREGAIN', `thread ${thread.tid} kept uids ${thread.uids.join('/')} gids ${thread.gids.join('/')} CapEff ${thread.capEff}`);
    }
  }
}

export interface ThreadCredentials {
  tid: string;
  /** Real, effective, saved and filesystem ids, as /proc lists them. */
  uids: number[];
  gids: number[];
  groups: number[];
  capEff: string;
}

/** The credentials of every thread of pid, from /proc. */
export function threadCredentials(pid: number | 'self'): ThreadCredentials[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const field = (name: string) => (new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '').trim();
    const numbers = (name: string) => field(name).split(/\s+/).filter(Boolean).map(Number);
    return { tid, uids: numbers('Uid'), gids: numbers('Gid'), groups: numbers('Groups'), capEff: field('CapEff') };
  });
}
