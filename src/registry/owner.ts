// Who holds a name. Mach frees a name when its receive right dies and sends
// a dead-name notification; here an owner dies when what it stands for goes:
// a listening server closes, a child process exits, a connection drops, or
// its holder calls die(). The registry frees every name of a dead owner.
import type { ChildProcess } from 'node:child_process';
import type { Server, Socket } from 'node:net';

export type DeathListener = (reason: string) => void;

export class ServiceOwner {
  private deathReason?: string;
  private readonly listeners = new Set<DeathListener>();

  constructor(readonly label: string) {}

  get alive(): boolean {
    return this.deathReason === undefined;
  }

  get reason(): string | undefined {
    return this.deathReason;
  }

  /** Calls `listener` once when the owner dies (at once if it is dead already). Returns an unsubscribe. */
  onDeath(listener: DeathListener): () => void {
    if (!this.alive) {
      listener(this.deathReason!);
      return () => {};
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  die(reason = 'closed'): void {
    if (!this.alive) return;
    this.deathReason = reason;
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const l of listeners) l(reason);
  }

  /** Dies when `server` closes. */
  static forServer(label: string, server: Server): ServiceOwner {
    const owner = new ServiceOwner(label);
    server.once('close', () => owner.die('its listener closed'));
    return owner;
  }

  /** Dies when `child` exits, with the exit code or signal as the reason. */
  static forProcess(label: string, child: ChildProcess): ServiceOwner {
    const owner = new ServiceOwner(label);
    if (child.exitCode !== null || child.signalCode !== null) {
      owner.die(exitReason(child.exitCode, child.signalCode));
    } else {
      child.once('exit', (code, signal) => owner.die(exitReason(code, signal)));
    }
    return owner;
  }

  /** Dies when `socket` closes (an owner on the far side of a connection). */
  static forSocket(label: string, socket: Socket): ServiceOwner {
    const owner = new ServiceOwner(label);
    if (socket.destroyed) owner.die('its connection closed');
    else socket.once('close', () => owner.die('its connection closed'));
    return owner;
  }
}

export function exitReason(code: number | null, signal: NodeJS.Signals | string | null): string {
  return signal ? `killed by ${signal}` : `exited with code ${code}`;
}
