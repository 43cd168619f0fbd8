// `tsmuxd [options]`: the daemon, with usbmuxd's flags and their meanings.
// What only some flags need (-U, --help, --sim-trust) is imported when they
// are given: every module a start loads delays the socket (docs/architecture.md,
// "Start-up").
import { spawn } from 'node:child_process';
import { closeSync, existsSync, readFileSync, unlinkSync, writeSync, ftruncateSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';

import { Logger } from '../util/log.js';
import { native, NativeError } from '../native/addon.js';
import { defaultConfigDir } from '../pairing/store.js';
import { defaultSocketPath, formatSocketAddress, parseSocketAddress } from '../protocol/address.js';
import { Daemon } from '../daemon/daemon.js';
import type { RemoteSettings } from '../daemon/daemon-remote.js';
import { PAIR_RECORD_POLICIES, type PairRecordPolicy } from '../server/access.js';
import { parseHostPort } from '../protocol/remote-messages.js';
import type { Account } from './privileges.js';
import type { TrustMode } from '../protocol/sim-control.js';
import { checkSendMss } from '../tunnel/tunnel-manager.js';
import { DEFAULT_GO_IOS_API, DEFAULT_TUNNELD_API, parseApiAddress } from '../tunnel-api/api-address.js';


function defaultPidfile(): string {
  if (process.getuid?.() === 0) return '/var/run/usbmuxd.pid';
  return join(process.env.XDG_RUNTIME_DIR ?? homedir(), 'tsmuxd.pid');
}

function defaultSimStateDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/tsmuxd/sims';
  return join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'tsmuxd', 'sims');
}

/** The mux window is 16 bits scaled by 256: 256 bytes to just under 16 MiB. */
function parseWindow(text: string): number {
  const m = /^(\d+)([KM]?)$/i.exec(text.trim());
  const bytes = m ? Number(m[1]) * { '': 1, K: 1024, M: 1 << 20 }[m[2].toUpperCase() as '' | 'K' | 'M'] : NaN;
  if (!(bytes >= 256 && bytes <= 0xffff * 256)) throw new Error(`--window is 256 to ${0xffff * 256} bytes (K/M suffixes), not '${text}'`);
  return bytes;
}

/** --tunneld-api / --go-ios-api: on by default, `off`, or a loopback HOST:PORT (refused otherwise, before anything starts). */
function tunnelApiOption(text: string | undefined, flag: string, fallback: string): string | undefined {
  const chosen = text ?? fallback;
  try {
    return parseApiAddress(chosen) ? chosen : undefined;
  } catch (err) {
    throw new Error(`${flag}: ${(err as Error).message}`);
  }
}

/** The --remote-* flags (docs/remote.md): checked, and the PEM files read, before anything starts. */
async function remoteSettings(values: Record<string, string | boolean | (string | boolean)[] | undefined>): Promise<RemoteSettings | undefined> {
  const text = (k: string) => values[k] as string | undefined;
  const files = { ca: text('remote-ca'), cert: text('remote-cert'), key: text('remote-key') };
  const named = Object.values(files).filter((f) => f !== undefined).length;
  const discover = text('remote-discover') ?? 'off';
  if (discover !== 'off' && discover !== 'tls' && discover !== 'all') throw new Error(`--remote-discover is off, tls or all, not '${discover}'`);
  if (!text('remote-listen') && named === 0 && discover === 'off' && !values['remote-insecure']) return undefined;
  if (named !== 0 && named !== 3) throw new Error('--remote-cert, --remote-key and --remote-ca go together');
  const policy = text('remote-pair-records') ?? 'read-only';
  if (!PAIR_RECORD_POLICIES.includes(policy as PairRecordPolicy)) throw new Error(`--remote-pair-records is ${PAIR_RECORD_POLICIES.join(', ')}, not '${policy}'`);
  const keepalive = text('remote-keepalive-ms') === undefined ? undefined : Number(text('remote-keepalive-ms'));
  if (keepalive !== undefined && !(Number.isInteger(keepalive) && keepalive >= 100 && keepalive <= 600_000)) {
    throw new Error(`--remote-keepalive-ms is 100 to 600000, not '${text('remote-keepalive-ms')}'`);
  }
  const listen = text('remote-listen') === undefined ? undefined : parseHostPort(text('remote-listen')!);
  if (listen && named === 0 && !values['remote-insecure']) throw new Error('--remote-listen needs --remote-cert, --remote-key and --remote-ca (or --remote-insecure)');
  const tls = named === 3 ? await (await import('../remote/remote-tls.js')).loadRemoteTls(files as { ca: string; cert: string; key: string }) : undefined;
  return {
    listen,
    tls,
    insecure: Boolean(values['remote-insecure']),
    pairRecords: policy as PairRecordPolicy,
    advertise: !values['no-advertise'],
    discover,
    keepaliveMs: keepalive,
  };
}

/** uid and gid of a user, from /etc/passwd. */
function signalRunning(pidfile: string, signal: NodeJS.Signals): number {
  if (!existsSync(pidfile)) {
    process.stderr.write(`tsmuxd: no pidfile at ${pidfile}; is it running?\n`);
    return 1;
  }
  const pid = Number(readFileSync(pidfile, 'utf8').trim());
  try {
    process.kill(pid, signal);
  } catch (err) {
    process.stderr.write(`tsmuxd: cannot signal ${pid}: ${(err as Error).message}\n`);
    return 1;
  }
  return 0;
}

/** Starts a foreground copy of ourselves in the background and waits until it listens. */
async function daemonize(argv: string[]): Promise<number> {
  // node's own flags (--unhandled-rejections=strict, say) carry over.
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv, '--foreground'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, TSMUXD_READY_FD: '3' },
  });
  const status = await new Promise<string>((resolve) => {
    let text = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.on('data', (d) => (text += d.toString()));
    pipe.on('end', () => resolve(text));
    child.once('exit', (code) => resolve(text || `exited with ${code}`));
  });
  if (status.startsWith('ready')) {
    child.unref();
    return 0;
  }
  process.stderr.write(`tsmuxd: ${status.trim()}\n`);
  return 1;
}

export async function runDaemonCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      help: { type: 'boolean', short: 'h' },
      foreground: { type: 'boolean', short: 'f' },
      verbose: { type: 'boolean', short: 'v', multiple: true },
      version: { type: 'boolean', short: 'V' },
      user: { type: 'string', short: 'U' },
      'disable-hotplug': { type: 'boolean', short: 'n' },
      'enable-exit': { type: 'boolean', short: 'z' },
      'no-preflight': { type: 'boolean', short: 'p' },
      udev: { type: 'boolean', short: 'u' },
      systemd: { type: 'boolean', short: 's' },
      'config-dir': { type: 'string', short: 'C' },
      socket: { type: 'string', short: 'S' },
      pidfile: { type: 'string', short: 'P' },
      exit: { type: 'boolean', short: 'x' },
      'force-exit': { type: 'boolean', short: 'X' },
      logfile: { type: 'string', short: 'l' },
      'json-log': { type: 'boolean' },
      cable: { type: 'string', multiple: true },
      sim: { type: 'string' },
      'sim-trust': { type: 'string' },
      'sim-state': { type: 'string' },
      'sim-product-version': { type: 'string' },
      'sim-tunnel-max-mtu': { type: 'string' },
      'sim-tunnel-drop-oversize': { type: 'string' },
      'sim-tunnel-loss-rate': { type: 'string' },
      'tunnel-mss': { type: 'string' },
      tunnels: { type: 'string' },
      wifi: { type: 'string' },
      'wifi-grace-ms': { type: 'string' },
      tun: { type: 'string' },
      'tun-prefix': { type: 'string' },
      'no-usb': { type: 'boolean' },
      window: { type: 'string' },
      'tunneld-api': { type: 'string' },
      'go-ios-api': { type: 'string' },
      capture: { type: 'string' },
      'remote-listen': { type: 'string' },
      'remote-cert': { type: 'string' },
      'remote-key': { type: 'string' },
      'remote-ca': { type: 'string' },
      'remote-insecure': { type: 'boolean' },
      'remote-pair-records': { type: 'string' },
      'no-advertise': { type: 'boolean' },
      'remote-discover': { type: 'string' },
      'remote-keepalive-ms': { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write((await import('./daemon-help.js')).DAEMON_HELP);
    return 0;
  }
  const pidfile = values.pidfile ?? defaultPidfile();
  if (values.exit) return signalRunning(pidfile, 'SIGUSR1');
  if (values['force-exit']) return signalRunning(pidfile, 'SIGTERM');
  const foreground = Boolean(values.foreground || values.systemd);
  const enableExit = Boolean(values['enable-exit'] || values.udev || values.systemd);
  // Checked before daemonizing, so a non-loopback ADDR is an error on the terminal.
  const tunneldApi = tunnelApiOption(values['tunneld-api'], '--tunneld-api', DEFAULT_TUNNELD_API);
  const goIosApi = tunnelApiOption(values['go-ios-api'], '--go-ios-api', DEFAULT_GO_IOS_API);
  if (!foreground) return daemonize(argv);

  const sims = values.sim ? Number(values.sim) : 0;
  if (!Number.isInteger(sims) || sims < 0) throw new Error(`--sim needs a count, not '${values.sim}'`);
  const window = values.window === undefined ? undefined : parseWindow(values.window);
  const simTrust = values['sim-trust'] as TrustMode | undefined;
  if (simTrust !== undefined) {
    const { TRUST_MODES } = await import('../protocol/sim-control.js');
    if (!TRUST_MODES.includes(simTrust)) throw new Error(`--sim-trust is auto, prompt or deny, not '${simTrust}'`);
  }
  // Passed to every simulated phone as its `tsmuxd sim` flag; the child checks them.
  const simArgs: string[] = [];
  for (const flag of ['product-version', 'tunnel-max-mtu', 'tunnel-drop-oversize', 'tunnel-loss-rate'] as const) {
    const v = values[`sim-${flag}`];
    if (v !== undefined) simArgs.push(`--${flag}`, v);
  }
  const tunnelSendMss = values['tunnel-mss'] === undefined ? undefined : Number(values['tunnel-mss']);
  if (tunnelSendMss !== undefined) {
    try {
      checkSendMss(tunnelSendMss);
    } catch (err) {
      throw new Error(`--tunnel-mss: ${(err as Error).message}`);
    }
  }
  const tunnels = values.tunnels ?? 'auto';
  if (tunnels !== 'auto' && tunnels !== 'off') throw new Error(`--tunnels is auto or off, not '${tunnels}'`);
  const wifi = values.wifi ?? 'auto';
  if (wifi !== 'auto' && wifi !== 'off') throw new Error(`--wifi is auto or off, not '${wifi}'`);
  const wifiGraceMs = values['wifi-grace-ms'] === undefined ? undefined : Number(values['wifi-grace-ms']);
  if (wifiGraceMs !== undefined && (!Number.isInteger(wifiGraceMs) || wifiGraceMs < 0 || wifiGraceMs > 600_000)) {
    throw new Error(`--wifi-grace-ms needs a whole number of ms up to 600000, not '${values['wifi-grace-ms']}'`);
  }
  const tun = values.tun ?? 'auto';
  if (tun !== 'auto' && tun !== 'off') throw new Error(`--tun is auto or off, not '${tun}'`);
  if (values['tun-prefix'] !== undefined) {
    const { checkTunPrefix } = await import('../tunnel/kernel-interface.js');
    try {
      checkTunPrefix(values['tun-prefix']);
    } catch (err) {
      throw new Error(`--tun-prefix: ${(err as Error).message}`);
    }
  }
  const remote = await remoteSettings(values);
  const log = new Logger({
    verbosity: 3 + (values.verbose?.length ?? 0),
    json: values['json-log'],
    file: values.logfile,
  });
  const ready = process.env.TSMUXD_READY_FD ? Number(process.env.TSMUXD_READY_FD) : undefined;
  const tellParent = (text: string) => {
    if (ready === undefined) return;
    try {
      writeSync(ready, text);
      closeSync(ready);
    } catch {
      // the parent is gone
    }
  };

  let lockFd: number | undefined;
  if (pidfile !== 'NONE') {
    try {
      lockFd = native.lockFile(pidfile);
    } catch (err) {
      const msg = err instanceof NativeError && err.code === 'ERR_LOCKED'
        ? `another instance is already running (${pidfile} is locked)`
        : (err as Error).message;
      log.error(msg);
      tellParent(`error: ${msg}\n`);
      return 1;
    }
    ftruncateSync(lockFd);
    writeSync(lockFd, `${process.pid}\n`, 0);
  }

  const address = parseSocketAddress(values.socket ?? defaultSocketPath());
  const privileges = values.user ? await import('./privileges.js') : undefined;
  let owner: Account | undefined;
  try {
    owner = values.user ? privileges?.lookupAccount(values.user) : undefined;
  } catch (err) {
    log.error(`cannot start: ${(err as Error).message}`);
    tellParent(`error: ${(err as Error).message}\n`);
    if (lockFd !== undefined) unlinkSync(pidfile);
    return 1;
  }
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({
      address,
      configDir: values['config-dir'] ?? defaultConfigDir(),
      log,
      cables: values.cable ?? [],
      sims,
      simTrust,
      simArgs,
      tunnelSendMss,
      tunnels,
      wifi,
      wifiGraceMs,
      tun,
      tunPrefix: values['tun-prefix'],
      preflight: !values['no-preflight'],
      simStateDir: values['sim-state'] ?? defaultSimStateDir(),
      usb: values['no-usb'] ? 'off' : values['disable-hotplug'] ? 'manual' : 'hotplug',
      uid: owner?.uid,
      gid: owner?.gid,
      window,
      tunneldApi,
      goIosApi,
      capture: values.capture === undefined ? undefined : resolvePath(values.capture),
      remote,
    });
  } catch (err) {
    log.error(`cannot start: ${(err as Error).message}`);
    tellParent(`error: ${(err as Error).message}\n`);
    if (lockFd !== undefined) unlinkSync(pidfile);
    return 1;
  }
  if (owner && privileges) {
    try {
      privileges.dropPrivileges(owner);
    } catch (err) {
      // Serving clients with privileges we were told to give up is worse than not serving.
      log.error(`cannot drop privileges: ${(err as Error).message}`);
      tellParent(`error: ${(err as Error).message}\n`);
      await daemon.stop();
      if (lockFd !== undefined) unlinkSync(pidfile);
      return 1;
    }
    log.notice(`running as ${owner.name} (uid ${owner.uid}, gid ${owner.gid}); root cannot be regained`);
  }
  if (values['no-usb']) log.info('USB is off (--no-usb)');
  if (values['no-preflight']) log.info('preflight is off: devices are visible at once');
  if (address.kind === 'unix' && address.path !== '/var/run/usbmuxd') {
    process.stdout.write(`export USBMUXD_SOCKET_ADDRESS=${formatSocketAddress(address)}\n`);
  }
  tellParent('ready\n');

  // Stopping never dies halfway with a stack trace: a teardown step that
  // fails is logged, and the rest (pidfile, exit) still happens.
  const stop = async (why: string) => {
    log.notice(`stopping: ${why}`);
    let status = 0;
    try {
      await daemon.stop();
    } catch (err) {
      log.error(`stopping failed: ${(err as Error)?.stack ?? String(err)}`);
      status = 1;
    }
    if (lockFd !== undefined) {
      try {
        unlinkSync(pidfile);
      } catch {
        // removed already
      }
    }
    process.exit(status);
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const) process.on(s, () => void stop(s));
  process.on('SIGUSR1', () => {
    if (!enableExit) return;
    if (daemon.devices.visible().length === 0) void stop('SIGUSR1 with no devices');
    else log.notice('SIGUSR1: devices are attached; staying');
  });
  process.on('SIGUSR2', () => {
    log.notice('SIGUSR2: looking for USB devices');
    daemon.discover();
  });
  return new Promise<number>(() => {});  // runs until a signal
}
