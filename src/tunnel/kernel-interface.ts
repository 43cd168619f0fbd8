// TUN mode (docs/tunnel.md, "Kernel interfaces"): when the daemon may make
// one (CAP_NET_ADMIN and /dev/net/tun), each tunnel also gets a kernel
// interface with the host's tunnel address and the /64, so every program on
// the machine reaches the phone at its tunnel address. The data plane makes
// it (native/tunnel/tun_interface.cc: TUNSETIFF and rtnetlink) and moves its
// packets; this decides whether to ask, names it, and falls back to the
// userspace stack alone with one log line when the kernel says no.
import { readFileSync } from 'node:fs';

import type { MuxEngine } from '../native/mux-engine.js';
import { TCP_IPV6_OVERHEAD } from '../protocol/cdtunnel.js';
import type { TunnelMode } from '../protocol/tunnel-messages.js';
import type { Logger } from '../util/log.js';

export type TunSetting = 'auto' | 'off';

export const DEFAULT_TUN_PREFIX = 'tsmux';
/** Room for the kernel's number after the prefix in a 15-character name. */
export const MAX_TUN_PREFIX = 11;
const TUN_PREFIX_RE = /^[A-Za-z][A-Za-z0-9_-]*$/;
/** Where lwIP's own local ports start (native/tunnel/limits.h, kLwipLocalPortFirst). */
export const LWIP_LOCAL_PORT_FIRST = 0xf000;
/** The tunnel's /64, as a phone hands it out. */
const TUNNEL_PREFIX_LENGTH = 64;

/** Failures that will not change while the daemon runs: no privilege, no TUN driver. */
const LASTING = /\b(Operation not permitted|Permission denied|No such file or directory|No such device)\b/;

export function checkTunPrefix(prefix: string): string {
  if (prefix.length > MAX_TUN_PREFIX || !TUN_PREFIX_RE.test(prefix)) {
    throw new RangeError(`the interface prefix is 1-${MAX_TUN_PREFIX} letters, digits, '_' or '-', starting with a letter, not '${prefix}'`);
  }
  return prefix;
}

export interface InterfaceChoice {
  mode: TunnelMode;
  interfaceName?: string;
}

export class KernelInterfaces {
  /** Set once the kernel refused for a reason that lasts: no more attempts, no more log lines. */
  private unavailable = false;
  private portRangeChecked = false;

  constructor(
    private readonly engine: MuxEngine,
    private readonly log: Logger,
    private readonly setting: TunSetting = 'auto',
    private readonly prefix = DEFAULT_TUN_PREFIX,
  ) {
    checkTunPrefix(prefix);
  }

  /**
   * The tunnel's interface, or userspace mode. The interface MTU is the send
   * MSS plus the TCP/IPv6 headers, so the kernel's own TCP segments are no
   * larger than the tunnel's (real phones drop larger ones under load).
   */
  attach(tunnel: number, udid: string, address: string, sendMss: number): InterfaceChoice {
    if (this.setting === 'off' || this.unavailable) return { mode: 'userspace' };
    try {
      const interfaceName = this.engine.openTunnelInterface(tunnel, {
        namePattern: `${this.prefix}%d`,
        address,
        prefixLength: TUNNEL_PREFIX_LENGTH,
        mtu: sendMss + TCP_IPV6_OVERHEAD,
      });
      this.checkPortRange();
      return { mode: 'tun', interfaceName };
    } catch (err) {
      const message = (err as Error).message;
      if (LASTING.test(message)) {
        this.unavailable = true;
        this.log.notice(`tunnels run in userspace only: no kernel interface (${message}); run as root or with CAP_NET_ADMIN for one`);
      } else {
        this.log.warning(`tunnel to ${udid}: no kernel interface (${message}); it runs in userspace`);
      }
      return { mode: 'userspace' };
    }
  }

  /**
   * lwIP's streams and the kernel's share the host's address, told apart by
   * the local port; a kernel whose ephemeral ports reach lwIP's range could
   * pick one of lwIP's, and that connection would not work. Said once.
   */
  private checkPortRange(): void {
    if (this.portRangeChecked) return;
    this.portRangeChecked = true;
    try {
      const [, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
      if (high !== undefined && high >= LWIP_LOCAL_PORT_FIRST) {
        this.log.warning(
          `net.ipv4.ip_local_port_range reaches ${high}: the kernel's connections through a tunnel interface that pick a port from ${LWIP_LOCAL_PORT_FIRST} up reach the daemon's own stack instead; keep it below ${LWIP_LOCAL_PORT_FIRST}`,
        );
      }
    } catch {
      // No procfs: nothing to check.
    }
  }
}
