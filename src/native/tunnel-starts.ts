// The host's tunnel starts waiting for the device's CDTunnel answer: each
// startTunnel() is settled by that tunnel's tunnelHandshake event (resolved
// with the JSON), its tunnelClosed event (rejected with the reason: TLS
// failed, a bad frame, the device left), or a deadline, whichever comes
// first. A late answer to a start that gave up closes its tunnel.
import { NativeError } from './addon.js';

/**
 * How long a host start waits for the device's frame. The native side gives
 * up on its own after 15 s (TLS and both frames); this is the backstop.
 */
export const TUNNEL_HANDSHAKE_TIMEOUT_MS = 20_000;

export interface TunnelHandshake {
  tunnel: number;
  /** The device's serverHandshakeResponse JSON, unchecked. */
  body: string;
}

interface PendingStart {
  resolve: (h: TunnelHandshake) => void;
  reject: (err: NativeError) => void;
  timer: NodeJS.Timeout;
}

export class PendingTunnelStarts {
  private readonly pending = new Map<number, PendingStart>();

  constructor(private readonly closeTunnel: (tunnel: number) => void) {}

  wait(tunnel: number, timeoutMs = TUNNEL_HANDSHAKE_TIMEOUT_MS): Promise<TunnelHandshake> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tunnel);
        try {
          this.closeTunnel(tunnel);
        } catch {
          // gone already
        }
        reject(new NativeError(`tunnel ${tunnel}: no CDTunnel answer from the device within ${timeoutMs} ms`, 'ERR_TIMEOUT'));
      }, timeoutMs);
      timer.unref();
      this.pending.set(tunnel, { resolve, reject, timer });
    });
  }

  /** The device answered; false if nobody waits for this tunnel any more. */
  answered(tunnel: number, body: string): boolean {
    const p = this.take(tunnel);
    p?.resolve({ tunnel, body });
    return p !== undefined;
  }

  closed(tunnel: number, err: NativeError): void {
    this.take(tunnel)?.reject(err);
  }

  abortAll(err: NativeError): void {
    for (const tunnel of [...this.pending.keys()]) this.closed(tunnel, err);
  }

  private take(tunnel: number): PendingStart | undefined {
    const p = this.pending.get(tunnel);
    if (!p) return undefined;
    this.pending.delete(tunnel);
    clearTimeout(p.timer);
    return p;
  }
}
