// The processes of the cable benchmark: a tsmuxd daemon, simulated phones on
// its virtual cable (each in its own process, as phones on their own links),
// and the plain SOCK_SEQPACKET relay built from seqpacket-relay.c.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

import { UsbmuxClient, type UsbmuxDevice } from '../../src/client/index.js';
import { packageRoot } from '../../src/native/addon.js';

const CLI = join(packageRoot, 'dist', 'src', 'cli', 'main.js');

export interface Sim {
  child: ChildProcess;
  udid: string;
  /** Device port -> the service's own 127.0.0.1 port. */
  services: Record<number, number>;
}

async function firstLine(child: ChildProcess, what: string): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`${what} exited (${code}) before it was ready`);
  });
  const [line] = (await Promise.race([once(lines, 'line'), exited])) as [string];
  return line;
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startDaemon(dir: string, extraArgs: string[] = []): Promise<{ child: ChildProcess; socket: string; cable: string }> {
  const socket = join(dir, 'usbmuxd.sock');
  const cable = join(dir, 'cable');
  // The tunnel APIs' fixed ports are for a user's daemon; a measured one has them only when asked.
  for (const flag of ['--tunneld-api', '--go-ios-api']) if (!extraArgs.includes(flag)) extraArgs = [...extraArgs, flag, 'off'];
  const child = spawn(
    process.execPath,
    [CLI, '-f', '-p', '--no-usb', ...extraArgs, '-S', socket, '-P', join(dir, 'tsmuxd.pid'), '-C', join(dir, 'lockdown'), '--cable', cable],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await waitFor(() => existsSync(socket) && existsSync(cable), 'the daemon socket');
  return { child, socket, cable };
}

export async function startSim(cable: string, stateDir: string): Promise<Sim> {
  const child = spawn(process.execPath, [CLI, 'sim', '--cable', cable, '--state-dir', stateDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await firstLine(child, 'a simulated phone');
  const ready = JSON.parse(line) as { event?: string; udid?: string; services?: Record<number, string | number> };
  if (ready.event !== 'ready' || !ready.udid || !ready.services) throw new Error(`the sim said ${line}`);
  const services: Record<number, number> = {};
  for (const [port, at] of Object.entries(ready.services)) if (typeof at === 'number') services[Number(port)] = at;
  return { child, udid: ready.udid, services };
}

export interface DaemonWithPhone {
  daemon: { child: ChildProcess; socket: string; cable: string };
  sim: Sim;
  /** A client of the daemon's socket. */
  client: UsbmuxClient;
  /** The phone as the daemon lists it. */
  device: UsbmuxDevice;
}

/**
 * A daemon and one simulated phone on its cable, once the daemon lists it:
 * how most benchmarks begin. Each child joins `children` as it starts, so a
 * failure part-way still leaves it to the caller's stopAll().
 */
export async function startDaemonWithPhone(
  dir: string,
  children: ChildProcess[],
  o: { daemonArgs?: string[]; clientTimeoutMs?: number } = {},
): Promise<DaemonWithPhone> {
  const daemon = await startDaemon(dir, o.daemonArgs);
  children.push(daemon.child);
  const sim = await startSim(daemon.cable, join(dir, 'sim'));
  children.push(sim.child);
  const client = new UsbmuxClient({ address: { kind: 'unix', path: daemon.socket }, timeoutMs: o.clientTimeoutMs });
  const device = await waitListed(client, sim.udid);
  return { daemon, sim, client, device };
}

/**
 * Pairs a phone through the daemon with `tsmuxd pair` (a sim answers Trust
 * by itself): the daemon runs with -p, no preflight, and a tunnel needs the
 * pair record. The phone re-enumerates after Trust, as a real one does.
 */
export async function pairPhone(socket: string, udid: string): Promise<void> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'pair', udid, '--socket', socket, '--wait', '60', '--json'], { timeout: 90_000 });
  const outcome = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { result?: string; error?: string };
  if (outcome.result !== 'paired') throw new Error(`tsmuxd pair ${udid}: ${outcome.result ?? stdout} ${outcome.error ?? ''}`);
}

/** Builds the relay with the system's C compiler into `dir`. */
export function buildRelay(dir: string): string {
  const out = join(dir, 'seqpacket-relay');
  const r = spawnSync('cc', ['-O2', '-o', out, join(packageRoot, 'bench', 'cable', 'seqpacket-relay.c')], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`cannot build seqpacket-relay.c: ${r.error?.message ?? r.stderr}`);
  return out;
}

export async function startRelay(binary: string, targetPort: number): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(binary, [String(targetPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = Number(await firstLine(child, 'seqpacket-relay'));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`seqpacket-relay printed '${port}'`);
  return { child, port };
}

export async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = once(c, 'exit');
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }),
  );
}

/** The phone once the daemon lists it (polled every 100 ms); throws after `timeoutMs`. */
export async function waitListed(client: UsbmuxClient, udid: string, timeoutMs = 30_000): Promise<UsbmuxDevice> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const device = (await client.listDevices()).find((d) => d.serialNumber === udid);
    if (device) return device;
    if (Date.now() > deadline) throw new Error('the phone was never listed');
    await new Promise((r) => setTimeout(r, 100));
  }
}
