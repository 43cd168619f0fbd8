// Keeps N simulated phones running, one child process each (sim-process.ts):
// a child that dies without being asked is started again after a backoff
// (doubling from 500 ms to 30 s, back to the start once a child has stayed
// up a minute), as the same phone (its UDID and state directory). Exits are
// collected as they happen: libuv reaps every child on SIGCHLD (waitpid) and
// reports its code and signal, which is where we act, so no child is left a
// zombie. stop() asks every child to quit (SIGTERM), waits, and kills the
// ones still there after the timeout; their stdin closes with us too, so a
// supervisor that is itself killed leaves no orphans. One log line per step.
import type { Logger } from '../util/log.js';
import { exitReason } from '../registry/owner.js';
import type { TrustMode } from '../protocol/sim-control.js';
import { SimProcess, STOP_GRACE_MS, type SimCommand, type SimExit, type SimReady } from './sim-process.js';

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** A child up this long is stable: the next crash starts the backoff over. */
  stableMs?: number;
}

export interface SupervisorOptions {
  cable: string;
  count: number;
  log: Logger;
  /** Where phone `i` keeps its identity and pair records (none: a new phone each start). */
  stateDir?: (index: number) => string | undefined;
  /** UDIDs for the first phones (the rest get new ones). */
  udids?: string[];
  trust?: TrustMode;
  /** Extra `tsmuxd sim` arguments for every child. */
  args?: string[];
  /** The children's user (tsmuxd -U), so a restart after the drop is the same user. */
  user?: { uid: number; gid: number };
  /** Where phone `i` serves its services on Unix sockets (none: loopback TCP). */
  socketDir?: (index: number) => string | undefined;
  /** Arguments for one phone only (e.g. its own RSD port). */
  argsFor?: (index: number) => string[];
  backoff?: BackoffOptions;
  /** How long stop() waits for a child after asking before it kills it. */
  stopTimeoutMs?: number;
  readyTimeoutMs?: number;
  /** Children starting at the same time at most (default 4). */
  startConcurrency?: number;
  /** The children's JSON lines (ready, plugged, ...), by phone index. */
  onEvent?: (index: number, event: Record<string, unknown>) => void;
}

export interface SimStatus {
  index: number;
  udid?: string;
  pid?: number;
  running: boolean;
  restarts: number;
}

interface Slot {
  index: number;
  sim?: SimProcess;
  udid?: string;
  restarts: number;
  backoffMs: number;
  startedAt: number;
  timer?: NodeJS.Timeout;
}

export const DEFAULT_START_CONCURRENCY = 4;
export const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000, stableMs: 60_000 } as const;

export class SimSupervisor {
  private readonly slots: Slot[];
  private stopping = false;
  /** Restarts under way: stop() waits for them too. */
  private readonly restarting = new Set<Promise<void>>();
  private readonly backoff: Required<BackoffOptions>;

  private constructor(private readonly options: SupervisorOptions) {
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.slots = Array.from({ length: options.count }, (_, index) => ({
      index,
      udid: options.udids?.[index],
      restarts: 0,
      backoffMs: this.backoff.initialMs,
      startedAt: 0,
    }));
  }

  /** Starts every phone and resolves once all are ready; if one cannot start, stops the rest and throws. */
  static async start(options: SupervisorOptions): Promise<SimSupervisor> {
    if (!Number.isInteger(options.count) || options.count < 0) throw new TypeError(`sim count must be a whole number, not ${options.count}`);
    const supervisor = new SimSupervisor(options);
    // A few at a time: each child's ready deadline runs from its own spawn,
    // and 32 node processes starting at once on two cores would miss theirs.
    let next = 0;
    let failure: { error: unknown } | undefined;
    const starter = async () => {
      while (next < supervisor.slots.length && !failure) {
        const slot = supervisor.slots[next++]!;
        await supervisor.spawn(slot).catch((error: unknown) => (failure ??= { error }));
      }
    };
    const concurrency = Math.max(1, options.startConcurrency ?? DEFAULT_START_CONCURRENCY);
    await Promise.all(Array.from({ length: Math.min(concurrency, options.count) }, starter));
    if (failure) {
      await supervisor.stop();
      throw failure.error;
    }
    return supervisor;
  }

  list(): SimStatus[] {
    return this.slots.map((s) => ({
      index: s.index,
      udid: s.sim?.ready.udid ?? s.udid,
      pid: s.sim?.running ? s.sim.pid : undefined,
      running: s.sim?.running ?? false,
      restarts: s.restarts,
    }));
  }

  /** The running phones' ready lines (UDID, pid, services). */
  readyList(): Array<SimReady & { index: number }> {
    return this.slots.flatMap((s) => (s.sim?.running ? [{ index: s.index, ...s.sim.ready }] : []));
  }

  /** A stdin command for phone `index`, or for every phone. */
  command(index: number | undefined, verb: SimCommand | string, arg?: number): void {
    const targets = index === undefined ? this.slots : this.slots.filter((s) => s.index === index);
    if (targets.length === 0) throw new RangeError(`no simulated phone ${index}`);
    for (const s of targets) s.sim?.command(verb, arg);
  }

  /** Ask, wait, kill: every child is gone (and reaped) when this resolves. */
  async stop(): Promise<void> {
    this.stopping = true;
    const graceMs = this.options.stopTimeoutMs ?? STOP_GRACE_MS;
    const log = this.options.log;
    await Promise.all(
      this.slots.map(async (slot) => {
        clearTimeout(slot.timer);
        const sim = slot.sim;
        if (!sim?.running) return;
        const began = Date.now();
        const exit = await sim.stop(graceMs, (step, afterMs) => {
          if (step === 'ask') log.info(`sim ${slot.index}: asking it to stop (SIGTERM)`, { sim: slot.index, pid: sim.pid });
          else log.warning(`sim ${slot.index}: still running ${afterMs} ms after SIGTERM; SIGKILL`, { sim: slot.index, pid: sim.pid });
        });
        log.info(`sim ${slot.index}: stopped (${exitReason(exit.code, exit.signal)}) after ${Date.now() - began} ms`, {
          sim: slot.index,
          pid: sim.pid,
        });
      }),
    );
    // A child that was starting again when we were asked stops as soon as it is up (spawn()).
    await Promise.all(this.restarting);
  }

  private async spawn(slot: Slot): Promise<void> {
    const o = this.options;
    const args = [...(o.args ?? []), ...(o.argsFor?.(slot.index) ?? [])];
    const socketDir = o.socketDir?.(slot.index);
    if (socketDir) args.push('--socket-dir', socketDir);
    const sim = await SimProcess.spawn({
      cable: o.cable,
      index: slot.index,
      log: o.log,
      trust: o.trust,
      udid: slot.udid,
      stateDir: o.stateDir?.(slot.index),
      args,
      user: o.user,
      readyTimeoutMs: o.readyTimeoutMs,
      onEvent: (ev) => o.onEvent?.(slot.index, ev),
    });
    slot.sim = sim;
    slot.udid = sim.ready.udid;
    slot.startedAt = Date.now();
    o.log.log(slot.restarts ? 'notice' : 'info', `sim ${slot.index}: ${slot.restarts ? 'restarted' : 'started'}, pid ${sim.pid}, ${sim.ready.udid}`, {
      sim: slot.index,
      pid: sim.pid,
      udid: sim.ready.udid,
    });
    sim.exited
      .then((exit) => this.onExit(slot, sim, exit))
      .catch((err: unknown) => o.log.error(`sim ${slot.index}: handling its exit failed: ${(err as Error)?.stack ?? String(err)}`));
    if (this.stopping) await sim.stop(o.stopTimeoutMs ?? STOP_GRACE_MS);
  }

  private onExit(slot: Slot, sim: SimProcess, exit: SimExit): void {
    if (this.stopping || sim.stopping || slot.sim !== sim) return;
    if (Date.now() - slot.startedAt >= this.backoff.stableMs) slot.backoffMs = this.backoff.initialMs;
    const wait = slot.backoffMs;
    slot.backoffMs = Math.min(slot.backoffMs * 2, this.backoff.maxMs);
    this.options.log.warning(`sim ${slot.index}: exited (${exitReason(exit.code, exit.signal)}); restarting in ${wait} ms`, {
      sim: slot.index,
      pid: sim.pid,
      code: exit.code,
      signal: exit.signal,
    });
    this.scheduleRestart(slot, wait);
  }

  private scheduleRestart(slot: Slot, wait: number): void {
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (this.stopping) return;
      slot.restarts++;
      const restart = this.spawn(slot).catch((err: unknown) => {
        if (this.stopping) return;
        const next = slot.backoffMs;
        slot.backoffMs = Math.min(slot.backoffMs * 2, this.backoff.maxMs);
        this.options.log.error(`sim ${slot.index}: restart failed (${(err as Error).message}); trying again in ${next} ms`, {
          sim: slot.index,
        });
        this.scheduleRestart(slot, next);
      });
      this.restarting.add(restart);
      void restart.finally(() => this.restarting.delete(restart));
    }, wait);
  }
}
