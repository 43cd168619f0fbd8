// One simulated phone in a child process of its own: a crash or hang in a sim
// must not take its parent with it, and each child has its own event thread,
// as separate phones have separate USB links. The child is
// dist/src/cli/sim-peer-main.js with a prepared environment (below); it speaks
// JSON lines on stdout and takes command lines on stdin
// (src/cli/sim-command.ts), and its stderr goes to our log under its prefix.
// The supervisor (supervisor.ts) restarts it when it dies.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import type { Logger } from '../util/log.js';
import { packageRoot } from '../native/addon.js';
import type { TrustMode } from '../protocol/sim-control.js';

/** The environment a sim child is started with; sim-peer-main takes them as defaults for its flags. */
export const SIM_ENV = {
  cable: 'TSMUXD_SIM_CABLE',
  stateDir: 'TSMUXD_SIM_STATE_DIR',
  udid: 'TSMUXD_SIM_UDID',
  logPrefix: 'TSMUXD_SIM_LOG_PREFIX',
  /** "1": quit when stdin closes (the parent is gone), so no sim outlives it. */
  stdinExit: 'TSMUXD_SIM_STDIN_EXIT',
} as const;

export interface SimProcessOptions {
  cable: string;
  index: number;
  log: Logger;
  stateDir?: string;
  /** Known after the first start (or given): a restarted sim stays the same phone. */
  udid?: string;
  trust?: TrustMode;
  /** Extra `tsmuxd sim` arguments. */
  args?: string[];
  /** Run the child as this user (tsmuxd -U): a sim needs no root. Applied only while we are root. */
  user?: { uid: number; gid: number };
  readyTimeoutMs?: number;
  /** Every JSON line the child prints (ready, unplugged, plugged, link-lost...). */
  onEvent?: (event: Record<string, unknown>) => void;
}

export interface SimReady {
  udid: string;
  serial: string;
  pid: number;
  services: Record<number, string | number>;
}

export interface SimExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type SimCommand = 'trust' | 'deny' | 'unplug' | 'plug' | 'replug';

export const STOP_GRACE_MS = 5000;
const READY_TIMEOUT_MS = 30_000;

export class SimProcess {
  /** Resolves when the child has exited (and been reaped). */
  readonly exited: Promise<SimExit>;
  private stopRequested = false;

  private constructor(
    readonly child: ChildProcess,
    readonly index: number,
    public ready: SimReady,
    exited: Promise<SimExit>,
  ) {
    this.exited = exited;
  }

  static async spawn(options: SimProcessOptions): Promise<SimProcess> {
    const script = join(packageRoot, 'dist', 'src', 'cli', 'sim-peer-main.js');
    const tag = `sim ${options.index}`;
    const args = [script];
    if (options.trust) args.push('--trust', options.trust);
    args.push(...(options.args ?? []));
    const env: NodeJS.ProcessEnv = { ...process.env, [SIM_ENV.cable]: options.cable, [SIM_ENV.logPrefix]: tag, [SIM_ENV.stdinExit]: '1' };
    delete env[SIM_ENV.stateDir];
    delete env[SIM_ENV.udid];
    if (options.stateDir) env[SIM_ENV.stateDir] = options.stateDir;
    if (options.udid) env[SIM_ENV.udid] = options.udid;
    // After the daemon's own drop to the same user, children inherit it.
    const as = options.user && process.getuid?.() === 0 ? options.user : {};
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env, ...as });
    // EPIPE on a dead child's stdin is its exit's business, not ours.
    child.stdin!.on('error', () => {});
    const exited = new Promise<SimExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: child.exitCode, signal: child.signalCode }));
    });
    // The child prefixes its own lines (SIM_ENV.logPrefix); a crash's stack trace comes bare.
    createInterface({ input: child.stderr! }).on('line', (line) =>
      options.log.warning(line.startsWith(`${tag}:`) ? line : `${tag}: ${line}`, { sim: options.index }),
    );
    const lines = createInterface({ input: child.stdout! });
    let sim: SimProcess | undefined;
    const timeoutMs = options.readyTimeoutMs ?? READY_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const first = new Promise<SimReady>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${tag} was not ready within ${timeoutMs} ms`)), timeoutMs);
      void exited.then(({ code, signal }) => reject(new Error(`${tag} exited (${signal ?? `code ${code}`}) before it was ready`)));
      lines.on('line', (line) => {
        let ev: Record<string, unknown>;
        try {
          ev = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return options.log.info(`${tag}: ${line}`, { sim: options.index });
        }
        if (ev.event === 'ready') {
          const ready = { udid: String(ev.udid), serial: String(ev.serial), pid: Number(ev.pid), services: ev.services as SimReady['services'] };
          if (sim) sim.ready = ready;
          resolve(ready);
        }
        options.onEvent?.(ev);
      });
    });
    try {
      sim = new SimProcess(child, options.index, await first, exited);
      return sim;
    } catch (err) {
      child.kill('SIGKILL');
      await exited;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** stop() was called: an exit now is not a crash. */
  get stopping(): boolean {
    return this.stopRequested;
  }

  command(verb: SimCommand | string, arg?: number): void {
    if (this.child.stdin?.writable) this.child.stdin.write(`${verb}${arg === undefined ? '' : ` 0 ${arg}`}\n`);
  }

  /**
   * Asks (SIGTERM), waits up to `graceMs`, then kills (SIGKILL); `onStep`
   * hears each step for the log. Resolves once the child is reaped.
   */
  async stop(graceMs = STOP_GRACE_MS, onStep?: (step: 'ask' | 'kill', afterMs: number) => void): Promise<SimExit> {
    this.stopRequested = true;
    if (!this.running) return this.exited;
    const started = Date.now();
    onStep?.('ask', 0);
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      onStep?.('kill', Date.now() - started);
      this.child.kill('SIGKILL');
    }, graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}
