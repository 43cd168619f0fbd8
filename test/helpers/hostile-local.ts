// Shared pieces of the hostile-local tests (a local user attacking the
// daemon through its socket): a real daemon process with two simulated
// phones, one of which can be stopped (SIGSTOP) so that it never answers a
// SYN; the attacker child process; and a watch that samples the daemon's RSS
// from /proc and times a second, well-behaved client while an attack runs.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import type { Test } from 'tap';

import { rssBytes } from '../../src/bench/proc.js';
import { UsbmuxClient } from '../../src/client/usbmux-client.js';
import { serialToUdid } from '../../src/native/config-select.js';
import { childrenOf, killOnExit, spawnDaemon, tempDir, waitUntil, type DaemonProcess } from './daemon-process.js';
import { within } from './usbmuxd-harness.js';

export const MiB = 1 << 20;
export const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

export interface SimPhone {
  index: number;
  udid: string;
  deviceId: number;
  pid: number;
}

export interface LocalDaemon {
  daemon: DaemonProcess;
  socketPath: string;
  configDir: string;
  /** A well-behaved client: the one that must still be answered. */
  client: UsbmuxClient;
  phones: SimPhone[];
}

/** `tsmuxd -f --sim N` with its own socket, pair records and sim state, once every phone is listed. */
export async function startLocalDaemon(t: Test, options: { sims?: number; args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<LocalDaemon> {
  const sims = options.sims ?? 2;
  const dir = tempDir(t, 'tsmuxd-hostile-local-');
  const socketPath = join(dir, 'usbmuxd.sock');
  const configDir = join(dir, 'lockdown');
  const daemon = spawnDaemon(
    t,
    ['-f', '-v', '--no-usb', '-S', socketPath, '-P', join(dir, 'pid'), '-C', configDir, '--sim', String(sims), '--sim-state', join(dir, 'sims'), ...(options.args ?? [])],
    options.env,
  );
  await daemon.ready(60_000);
  const client = new UsbmuxClient({ address: { kind: 'unix', path: socketPath }, timeoutMs: 20_000 });
  const listed = await waitUntil(async () => {
    const list = await client.listDevices();
    return list.length === sims && list;
  }, 60_000, `${sims} phones to be listed`);
  const simPids = await waitUntil(() => {
    const found = childrenOf(daemon.pid).map((c) => ({ pid: c.pid, index: simIndexOf(c.pid) })).filter((c) => c.index !== undefined);
    return found.length === sims && found;
  }, 20_000, 'the sim processes');
  const phones = simPids.map(({ pid, index }) => {
    const { serial } = JSON.parse(readFileSync(join(dir, 'sims', `sim-${index}`, 'identity.json'), 'utf8')) as { serial: string };
    const udid = serialToUdid(serial);
    const device = listed.find((d) => d.serialNumber === udid);
    if (!device) throw new Error(`sim ${index} (${udid}) is not in the device list`);
    return { index: index!, udid, deviceId: device.deviceId, pid };
  });
  return { daemon, socketPath, configDir, client, phones: phones.sort((a, b) => a.index - b.index) };
}

/** The sim index of a process, from its state directory (TSMUXD_SIM_STATE_DIR=.../sim-N). */
function simIndexOf(pid: number): number | undefined {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8');
    const m = /TSMUXD_SIM_STATE_DIR=[^\0]*\/sim-(\d+)\0/.exec(env);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Stops a phone (SIGSTOP): it reads nothing and answers no SYN until the teardown continues it. */
export function stopPhone(t: Test, phone: SimPhone): void {
  process.kill(phone.pid, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(phone.pid, 'SIGCONT');
    } catch {
      // already gone
    }
  });
}

export interface AttackOptions {
  path: string;
  mode: 'connect-flood' | 'pipeline' | 'slow-header' | 'close-mid-reply';
  count: number;
  deviceId?: number;
  port?: number;
  bytesEach?: number;
  /** One whole request frame (pipeline, slow-header, close-mid-reply). */
  request?: Buffer;
  seconds: number;
}

export interface AttackTotals {
  attempted: number;
  accepted: number;
  closedByDaemon: number;
  /** Failed connects. */
  errors: Record<string, number>;
  /** Errors on connected sockets (EPIPE, ECONNRESET once the daemon closes them). */
  socketErrors: Record<string, number>;
  results: Record<string, number>;
  resultMsMin?: number;
  resultMsMax?: number;
  cycles: number;
}

/** Runs hostile-local-attacker.mjs; `started` once its clients are connected, `done` with its totals. */
export function attack(t: Test, options: AttackOptions): { started: Promise<void>; done: Promise<AttackTotals> } {
  const script = fileURLToPath(new URL('./hostile-local-attacker.mjs', import.meta.url));
  const { request, ...rest } = options;
  const arg = JSON.stringify({ ...rest, request: request?.toString('base64') });
  const child = killOnExit(spawn(process.execPath, [script, arg], { stdio: ['ignore', 'pipe', 'inherit'] }));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! });
  const next = async (key: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const [line] = (await within(once(lines, 'line'), (options.seconds + 120) * 1000, `the attacker's ${key} line`)) as [string];
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (key in parsed) return parsed[key] as Record<string, unknown>;
    }
  };
  const started = next('started').then(() => undefined);
  const done = started.then(() => next('done')) as Promise<unknown> as Promise<AttackTotals>;
  return { started, done };
}

export interface WatchReport {
  rssBefore: number;
  rssPeak: number;
  rssGrowth: number;
  /** When the watch stopped: back near rssBefore once the attack's garbage is collected. */
  rssEnd: number;
  probes: number;
  probeFailures: string[];
  latencyP50Ms: number;
  latencyMaxMs: number;
}

/**
 * Samples the daemon's RSS every 100 ms and times a ListDevices from a fresh
 * client every 250 ms, until stopped. A probe that fails or takes over 10 s
 * is a failure.
 */
export function watchDaemon(ld: LocalDaemon): { stop(): Promise<WatchReport> } {
  const rssBefore = rssBytes(ld.daemon.pid);
  let rssPeak = rssBefore;
  const latencies: number[] = [];
  const failures: string[] = [];
  let running = true;
  const sampler = setInterval(() => {
    try {
      rssPeak = Math.max(rssPeak, rssBytes(ld.daemon.pid));
    } catch {
      // the daemon is gone; the test says so
    }
  }, 100);
  const prober = (async () => {
    const probe = new UsbmuxClient({ address: { kind: 'unix', path: ld.socketPath }, timeoutMs: 10_000 });
    while (running) {
      const started = performance.now();
      try {
        const list = await probe.listDevices();
        if (list.length === 0) throw new Error('an empty device list');
        latencies.push(performance.now() - started);
      } catch (err) {
        failures.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return {
    async stop() {
      running = false;
      clearInterval(sampler);
      await prober;
      let rssEnd = NaN;
      try {
        rssEnd = rssBytes(ld.daemon.pid);
        rssPeak = Math.max(rssPeak, rssEnd);
      } catch {
        // gone
      }
      const sorted = [...latencies].sort((a, b) => a - b);
      return {
        rssBefore,
        rssPeak,
        rssGrowth: rssPeak - rssBefore,
        rssEnd,
        probes: latencies.length,
        probeFailures: failures,
        latencyP50Ms: sorted.length ? sorted[Math.floor(sorted.length / 2)]! : NaN,
        latencyMaxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
      };
    },
  };
}

/** One line for the test's output: the figures the issue asks for. */
export function describeWatch(what: string, w: WatchReport): string {
  return `${what}: daemon RSS ${mib(w.rssBefore)} -> peak ${mib(w.rssPeak)} (+${mib(w.rssGrowth)}), ${mib(w.rssEnd)} at the end; second client ListDevices p50 ${w.latencyP50Ms.toFixed(1)} ms, max ${w.latencyMaxMs.toFixed(1)} ms over ${w.probes} probes, ${w.probeFailures.length} failed${w.probeFailures.length ? ` (${[...new Set(w.probeFailures)].slice(0, 3).join('; ')})` : ''}`;
}
