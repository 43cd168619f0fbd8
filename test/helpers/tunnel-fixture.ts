// The tunnel tests' world: tsmuxd as a child process with supervised `--sim`
// phones, and on its virtual cable further phones in processes of their own
// (sim-peer-main.js, with their own flags: an old iOS, a lossy tunnel...,
// and stdin commands such as "unplug"). lwIP is one stack per process, so a
// test never runs a phone's tunnel beside the daemon's: every phone here is
// a process of its own. Also the figures the tests print.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import type { Test } from 'tap';

import { UsbmuxClient } from '../../src/client/usbmux-client.js';
import { packageRoot } from '../../src/native/addon.js';
import { killOnExit, tempDir, waitUntil } from './daemon-process.js';
import { startLocalDaemon, type LocalDaemon } from './hostile-local.js';
import { within } from './usbmuxd-harness.js';

export const MiB = 1 << 20;

export interface StandaloneSim {
  child: ChildProcess;
  udid: string;
  /** Its JSON lines so far (ready, tunnel, tunnel-closed, unplugged...). */
  events: Array<Record<string, unknown>>;
  /** A stdin command: unplug, plug, replug... */
  command(line: string): void;
}

/** A phone in its own process on the daemon's cable, with `tsmuxd sim` flags. */
export async function startStandaloneSim(t: Test, cable: string, args: string[] = []): Promise<StandaloneSim> {
  const script = join(packageRoot, 'dist', 'src', 'cli', 'sim-peer-main.js');
  const child = killOnExit(spawn(process.execPath, [script, '--cable', cable, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }));
  child.stdin!.on('error', () => {});
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await within(exited, 10_000, 'a sim to stop').catch(() => child.kill('SIGKILL'));
  });
  const events: Array<Record<string, unknown>> = [];
  const lines = createInterface({ input: child.stdout! });
  const ready = new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      let ev: Record<string, unknown>;
      try {
        ev = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      events.push(ev);
      if (ev.event === 'ready') resolve(String(ev.udid));
    });
    child.once('exit', (code, signal) => reject(new Error(`a sim exited (${signal ?? code}) before it was ready`)));
  });
  const udid = await within(ready, 30_000, 'a standalone sim to be ready');
  return { child, udid, events, command: (line) => void child.stdin!.write(`${line}\n`) };
}

export interface TunnelWorld extends LocalDaemon {
  cable: string;
  /** The phones in processes of their own, by the name the test gave them. */
  standalone: Record<string, StandaloneSim>;
}

/**
 * `tsmuxd -f --sim N --cable PATH` (and `daemonArgs`), then one standalone
 * phone per entry of `standalone` (its flags), once every phone is listed
 * (so preflight has paired it).
 */
export async function startTunnelWorld(
  t: Test,
  options: { sims?: number; daemonArgs?: string[]; standalone?: Record<string, string[]> } = {},
): Promise<TunnelWorld> {
  const cable = join(tempDir(t, 'tsmuxd-tunnel-'), 'cable');
  const local = await startLocalDaemon(t, { sims: options.sims ?? 1, args: ['--cable', cable, ...(options.daemonArgs ?? [])] });
  const entries = Object.entries(options.standalone ?? {});
  const started = await Promise.all(entries.map(([, args]) => startStandaloneSim(t, cable, args)));
  const standalone = Object.fromEntries(entries.map(([name], i) => [name, started[i]!]));
  await waitUntil(async () => {
    const listed = new Set((await local.client.listDevices()).map((d) => d.serialNumber));
    return started.every((s) => listed.has(s.udid));
  }, 60_000, 'the standalone phones to be listed');
  return { ...local, cable, standalone };
}

/** A client with room for tunnel starts (a session, TLS, the handshake). */
export function tunnelClient(socketPath: string): UsbmuxClient {
  return new UsbmuxClient({ address: { kind: 'unix', path: socketPath }, timeoutMs: 30_000 });
}

export function mbPerSecond(bytes: number, ms: number): string {
  return `${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`;
}
