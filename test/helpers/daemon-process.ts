// The daemon as a child process (`node dist/src/cli/main.js ...`), other
// commands with a deadline, and small polling helpers, for the tests that
// treat tsmuxd and the real libimobiledevice tools as black boxes.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

import { packageRoot } from '../../src/native/addon.js';
import { patience } from './sanitizers.js';

export type Teardown = { teardown(fn: () => void | Promise<void>): void };

/** The built command; the tests run the daemon exactly as users do. */
export const MAIN_JS = join(packageRoot, 'dist', 'src', 'cli', 'main.js');

export function assertBuilt(): void {
  if (!existsSync(MAIN_JS)) {
    throw new Error(`${MAIN_JS} is missing: build it first (npx tsc -p tsconfig.build.json)`);
  }
}

export function tempDir(t: Teardown, prefix = 'tsmuxd-proc-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** True while a process with this pid exists (a zombie counts as gone only once reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Polls `check` until it returns a truthy value; rejects with `what` after `timeoutMs`. */
export async function waitUntil<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number,
  what: string,
  everyMs = 25,
): Promise<T> {
  timeoutMs = patience(timeoutMs);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Full path of an executable on PATH, or undefined. */
export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunResult extends Exit {
  stdout: string;
  stderr: string;
  /** True when the deadline passed and the process was killed. */
  timedOut: boolean;
  ms: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  input?: string | Buffer;
  cwd?: string;
}

/** Runs a command to completion (or SIGKILL at the deadline), collecting its output. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  if (options.input !== undefined) {
    child.stdin!.on('error', () => {});
    child.stdin!.end(options.input);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, patience(options.timeoutMs ?? 30_000));
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started });
    });
  });
}

/** `node dist/src/cli/main.js ARGS` to completion. */
export function runCli(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [MAIN_JS, ...args], { timeoutMs: 20_000, ...options });
}

/** Text a process writes, with a way to wait for a line that matches. */
export class OutputWatch {
  text = '';
  private waiters: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];

  constructor(stream: NodeJS.ReadableStream) {
    stream.on('data', (d: Buffer) => {
      this.text += d.toString();
      this.waiters = this.waiters.filter((w) => {
        const m = this.text.match(w.re);
        if (m) w.resolve(m);
        return !m;
      });
    });
  }

  lines(): string[] {
    return this.text.split('\n').filter((l) => l.length > 0);
  }

  /** Resolves with the first match of `re` in everything written so far (or later). */
  waitFor(re: RegExp, timeoutMs: number, exited?: Promise<Exit>): Promise<RegExpMatchArray> {
    timeoutMs = patience(timeoutMs);
    const m = this.text.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const waiter = {
        re,
        resolve: (found: RegExpMatchArray) => {
          clearTimeout(timer);
          resolve(found);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; output so far:\n${this.text}`));
      }, timeoutMs);
      this.waiters.push(waiter);
      void exited?.then((e) => {
        if (!this.waiters.includes(waiter)) return;
        // Give the stream a moment to deliver its last bytes.
        setTimeout(() => {
          if (!this.waiters.includes(waiter)) return;
          this.waiters = this.waiters.filter((w) => w !== waiter);
          clearTimeout(timer);
          reject(new Error(`process exited (${e.code ?? e.signal}) before ${re} appeared; output:\n${this.text}`));
        }, 100);
      });
    });
  }
}

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  args: string[];
  stdout: OutputWatch;
  stderr: OutputWatch;
  exited: Promise<Exit>;
  /** Non-null once the process has exited. */
  exit(): Exit | null;
  /** Waits for the `export USBMUXD_SOCKET_ADDRESS=...` line; returns the address. */
  ready(timeoutMs?: number): Promise<string>;
  /** Resolves with the exit status, or rejects after `timeoutMs`. */
  waitExit(timeoutMs: number): Promise<Exit>;
  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  stop(graceMs?: number): Promise<Exit>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((c) => c.kill('SIGKILL')));

/**
 * Kills `child` when this test process exits, whatever way it ends. A test
 * file that dies of an unhandled rejection never runs its teardowns, and a
 * sim left behind then waits for its cable forever.
 */
export function killOnExit(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/**
 * What node prints when a process dies of an uncaught exception or (with
 * --unhandled-rejections=strict) of a promise nobody handled: the stack,
 * then its own version line.
 */
export const NODE_FATAL_RE = /^Node\.js v\d+\.\d+\.\d+$/m;

/** Node's flags for every daemon a test starts: a floating rejection kills it at once, loudly. */
export const DAEMON_NODE_FLAGS = ['--unhandled-rejections=strict'];

/**
 * The daemon's tunneld and go-ios APIs default to fixed ports (49151,
 * 60105): tests that run at once would fight over them, so a daemon a test
 * starts has them off unless its arguments name them. Only the daemon
 * command (flags first), not a subcommand such as `sim` or `forward`.
 */
export function withTunnelApisOff(args: string[]): string[] {
  if (!args[0]?.startsWith('-')) return args;
  const names = (flag: string) => args.some((a) => a === flag || a.startsWith(`${flag}=`));
  return [
    ...args,
    ...(names('--tunneld-api') ? [] : ['--tunneld-api', 'off']),
    ...(names('--go-ios-api') ? [] : ['--go-ios-api', 'off']),
  ];
}

/**
 * Starts `node --unhandled-rejections=strict dist/src/cli/main.js ARGS`; it
 * is killed at teardown if still running, and the teardown fails the test if
 * the daemon died of an uncaught exception or an unhandled rejection, even
 * when the test itself never noticed.
 */
export function spawnDaemon(
  t: Teardown,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  /** A command that execs the daemon (e.g. unshare and a mount first); its pid is the daemon's. */
  wrap: string[] = [],
  /** The node that runs it: this one, or another that execs it (test/arm64: an arm64 node under qemu-user). */
  node = process.execPath,
): DaemonProcess {
  assertBuilt();
  // The daemon command (not a subcommand such as sim): tunnels only where a test asks.
  if (args[0]?.startsWith('-') && !args.includes('--tunnels')) args = [...args, '--tunnels', 'off'];
  // Nor kernel interfaces (as root every tunnel would get one): test/tunnel-tun.test.ts asks for them.
  if (args[0]?.startsWith('-') && !args.includes('--tun')) args = [...args, '--tun', 'off'];
  // Nor mDNS: a daemon browsing would pay for it, and would see other tests' network sims.
  if (args[0]?.startsWith('-') && !args.includes('--wifi')) args = [...args, '--wifi', 'off'];
  const command = [...wrap, node, ...DAEMON_NODE_FLAGS, MAIN_JS, ...withTunnelApisOff(args)];
  const child = killOnExit(spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env }));
  let status: Exit | null = null;
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      status = { code, signal };
      resolve(status);
    }),
  );
  const stdout = new OutputWatch(child.stdout!);
  const stderr = new OutputWatch(child.stderr!);
  const waitExit = (timeoutMs: number): Promise<Exit> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`pid ${child.pid} still running after ${timeoutMs} ms; stderr:\n${stderr.text}`)),
        timeoutMs,
      );
    });
    return Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
  };
  const proc: DaemonProcess = {
    child,
    pid: child.pid!,
    args,
    stdout,
    stderr,
    exited,
    exit: () => status,
    async ready(timeoutMs = 15_000) {
      const m = await stdout.waitFor(/^export USBMUXD_SOCKET_ADDRESS=(\S+)$/m, timeoutMs, exited);
      return m[1];
    },
    waitExit,
    async stop(graceMs = 5_000) {
      if (status) return status;
      child.kill('SIGTERM');
      try {
        return await waitExit(graceMs);
      } catch {
        child.kill('SIGKILL');
        return exited;
      }
    },
  };
  t.teardown(async () => {
    if (!status) await proc.stop(3_000);
    const fatal = NODE_FATAL_RE.exec(stderr.text) ?? NODE_FATAL_RE.exec(stdout.text);
    // tap's process-info hook, preloaded into every child, dies at exit in a
    // daemon that dropped to a user (-U) who cannot write under the repo.
    // That is tap's, not the daemon's.
    const tapsOwn = /EACCES[^\n]*\.tap\/processinfo/.test(stderr.text);
    if (fatal && !tapsOwn) {
      throw new Error(`the daemon (pid ${child.pid}) died of an uncaught exception or an unhandled rejection:\n${stderr.text.slice(-4000)}`);
    }
  });
  return proc;
}

/** A TCP port on 127.0.0.1 (and ::1, where there is one) that was free a moment ago. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const v6free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'EADDRINUSE'));
      s.listen(port, '::1', () => s.close(() => resolve(true)));
    });
    if (v6free) return port;
  }
  throw new Error('no free local port found');
}

/** Connects to a TCP port, retrying while nothing listens there yet. */
export async function connectWithRetry(port: number, host: string, timeoutMs: number): Promise<net.Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(port, host);
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

/** Can a client connect to this Unix socket right now? */
export function socketAccepts(path: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** pid -> [state letter, parent pid] for every process, from /proc. */
export function processTable(): Map<number, { state: string; ppid: number }> {
  const table = new Map<number, { state: string; ppid: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(entry), { state: state!, ppid: Number(ppid) });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

/** The processes whose parent is `pid`, with their state letters. */
export function childrenOf(pid: number): Array<{ pid: number; state: string }> {
  return [...processTable()].filter(([, p]) => p.ppid === pid).map(([child, p]) => ({ pid: child, state: p.state }));
}
