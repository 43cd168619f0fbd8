// One simulated phone in a child process (`tsmuxd --sim N` starts N). A
// crash or hang in a sim must not take the daemon with it, and each child
// has its own event thread, as separate phones have separate USB links.
// The child speaks JSON lines on stdout and takes command lines on stdin
// (src/cli/sim-command.ts); its stderr goes to our log with a prefix.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import type { Logger } from '../log.js';
import { packageRoot } from '../native.js';
import type { TrustMode } from './lockdown/lockdownd.js';

export interface SimProcessOptions {
  cable: string;
  index: number;
  log: Logger;
  stateDir?: string;
  trust?: TrustMode;
  /** Extra `tsmuxd sim` arguments. */
  args?: string[];
  readyTimeoutMs?: number;
}

export interface SimReady {
  udid: string;
  serial: string;
  pid: number;
  services: Record<number, string | number>;
}

export type SimCommand = 'trust' | 'deny' | 'unplug' | 'plug' | 'replug';

const STOP_GRACE_MS = 5000;

export class SimProcess {
  private readonly exited: Promise<void>;
  private stopping = false;

  private constructor(
    readonly child: ChildProcess,
    readonly index: number,
    public ready: SimReady,
  ) {
    this.exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit').then(() => undefined);
  }

  static async spawn(options: SimProcessOptions): Promise<SimProcess> {
    const script = join(packageRoot, 'dist', 'src', 'sim', 'peer-main.js');
    const args = [script, '--cable', options.cable];
    if (options.stateDir) args.push('--state-dir', options.stateDir);
    if (options.trust) args.push('--trust', options.trust);
    args.push(...(options.args ?? []));
    const child = spawn(process.execPath, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TSMUXD_SIM_STDIN_EXIT: '1' },
    });
    const tag = `sim ${options.index}`;
    createInterface({ input: child.stderr! }).on('line', (line) => options.log.warning(`${tag}: ${line}`));
    const lines = createInterface({ input: child.stdout! });
    let sim: SimProcess | undefined;
    const first = new Promise<SimReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${tag} was not ready within ${options.readyTimeoutMs ?? 30_000} ms`)), options.readyTimeoutMs ?? 30_000);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${tag} exited (${signal ?? `code ${code}`}) before it was ready`));
      });
      lines.on('line', (line) => {
        let ev: Record<string, unknown>;
        try {
          ev = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return options.log.info(`${tag}: ${line}`);
        }
        if (ev.event === 'ready') {
          const ready = { udid: String(ev.udid), serial: String(ev.serial), pid: Number(ev.pid), services: ev.services as SimReady['services'] };
          clearTimeout(timer);
          if (sim) sim.ready = ready;
          resolve(ready);
        }
        options.log.info(`${tag}: ${String(ev.event)}`, ev);
      });
    });
    child.on('exit', (code, signal) => {
      if (sim && !sim.stopping) options.log.warning(`${tag} exited (${signal ?? `code ${code}`})`);
    });
    try {
      sim = new SimProcess(child, options.index, await first);
      return sim;
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  command(verb: SimCommand, arg?: number): void {
    if (this.child.stdin?.writable) this.child.stdin.write(`${verb}${arg === undefined ? '' : ` 0 ${arg}`}\n`);
  }

  /** SIGTERM, then SIGKILL if it has not gone within the grace period. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.stopping = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
