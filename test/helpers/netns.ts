// Two network namespaces joined by a veth pair, for the Wi-Fi tests: the
// daemon in one, the simulated phone in the other, so that mDNS multicast,
// addresses and TCP are real and no other test (nor the host) sees them.
// Root only; `netnsUnavailable()` says why not elsewhere.
import { execFileSync } from 'node:child_process';

import { findOnPath, type Teardown } from './daemon-process.js';

export interface VethPair {
  /** The daemon's namespace and address. */
  hostNs: string;
  hostAddress: string;
  /** The phone's namespace and address. */
  phoneNs: string;
  phoneAddress: string;
  /** argv prefix that runs a command in a namespace. */
  exec(ns: string): string[];
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** false where namespaces work; otherwise the reason to skip. */
export function netnsUnavailable(): string | false {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (!findOnPath('ip')) return "'ip' not found: apt-get install iproute2";
  return false;
}

/** Makes the pair (a /24 of its own from `slot`); removed at teardown. */
export function vethPair(t: Teardown, slot = process.pid % 200): VethPair {
  const tag = `${process.pid % 100000}`;
  const hostNs = `tsmuxd-h${tag}`;
  const phoneNs = `tsmuxd-p${tag}`;
  const hostIf = `tsh${tag}`;
  const phoneIf = `tsp${tag}`;
  const net = `10.231.${slot}`;
  const hostAddress = `${net}.1`;
  const phoneAddress = `${net}.2`;
  const remove = () => {
    for (const ns of [hostNs, phoneNs]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // not made, or gone already
      }
    }
  };
  t.teardown(remove);
  // A test file that dies of an exception runs no teardown.
  process.once('exit', remove);
  ip('netns', 'add', hostNs);
  ip('netns', 'add', phoneNs);
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', phoneIf);
  ip('link', 'set', hostIf, 'netns', hostNs);
  ip('link', 'set', phoneIf, 'netns', phoneNs);
  for (const [ns, dev, address] of [
    [hostNs, hostIf, hostAddress],
    [phoneNs, phoneIf, phoneAddress],
  ] as const) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', dev);
    ip('-n', ns, 'link', 'set', dev, 'up');
    // mDNS goes out of the interface multicast is routed to.
    ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', dev);
  }
  return { hostNs, hostAddress, phoneNs, phoneAddress, exec: (ns) => ['ip', 'netns', 'exec', ns] };
}
