// Which daemon a benchmark measured, so that a Mac's figures and the lab's are
// never confused: its pid (given, the socket's owner, or found by name where
// the platform's usbmuxd listens), its name and version (tsmuxd's
// package.json, `usbmuxd --version`, the MobileDevice framework's bundle
// version on macOS, the service executable's file version on Windows), its
// BUID, and the platform the bench ran on.
import { readFileSync } from 'node:fs';
import { arch, release } from 'node:os';
import { dirname, join } from 'node:path';

import { UsbmuxClient } from '../client/index.js';
import { formatSocketAddress, platformSocketAddress, sameSocketAddress, type SocketAddress } from '../protocol/address.js';
import { isPlistDict, parsePlist } from '../protocol/plist-codec.js';
import { runProgram, type Exec, type ProcessProbe } from './daemon-process.js';
import { socketOwnerPid } from './proc.js';
import type { DaemonRecord } from './records.js';

/** What each platform's usbmuxd process is called, to find it by name. */
export const USBMUXD_PROCESS: Partial<Record<NodeJS.Platform, string>> = {
  linux: 'usbmuxd',
  darwin: 'usbmuxd',
  win32: 'AppleMobileDeviceService',
};

/** Apple's usbmuxd on macOS lives in this framework; its Info.plist carries the version. */
export const MOBILE_DEVICE_FRAMEWORK = '/System/Library/PrivateFrameworks/MobileDevice.framework';
const FRAMEWORK_PLISTS = ['Versions/A/Resources/Info.plist', 'Resources/Info.plist'];
/** Where Apple Mobile Device Support installs the service (its process path is hidden from non-admins). */
export const WINDOWS_SERVICE_EXE = 'C:\\Program Files\\Common Files\\Apple\\Mobile Device Support\\AppleMobileDeviceService.exe';
/** A ReadBUID answers at once; a daemon that ignores it must not stall the bench. */
const BUID_TIMEOUT_MS = 3_000;
/** How far above cli/main.js tsmuxd's package.json may be (dist/src/cli/main.js: three). */
const PACKAGE_SEARCH_DEPTH = 5;

export interface DaemonPid {
  pid?: number;
  /** How it was found, or why it was not. */
  from: string;
}

/**
 * The measured daemon's pid: given (--daemon-pid); on Linux the owner of the
 * Unix socket; where the address is the platform's usbmuxd, the only process
 * with its name (macOS usbmuxd, Windows AppleMobileDeviceService, Linux
 * usbmuxd when root owns the socket).
 */
export function findDaemonPid(address: SocketAddress, platform: NodeJS.Platform, probe: ProcessProbe, given?: number): DaemonPid {
  if (given !== undefined) return { pid: given, from: '--daemon-pid' };
  if (platform === 'linux' && address.kind === 'unix') {
    const owner = socketOwnerPid(address.path);
    if (owner !== undefined) return { pid: owner, from: "the socket's owner" };
  }
  const name = USBMUXD_PROCESS[platform];
  if (!name || !sameSocketAddress(address, platformSocketAddress(platform))) {
    return { from: `nothing found listening on ${formatSocketAddress(address)}` };
  }
  const pids = probe.pidsNamed(name);
  if (pids.length === 1) return { pid: pids[0], from: `the only process named ${name}` };
  return { from: pids.length === 0 ? `no process named ${name}` : `${pids.length} processes named ${name}` };
}

const basename = (path: string) => path.split(/[\\/]/).pop()!.replace(/\.exe$/i, '');

/** tsmuxd's version from its command line: the package.json above the cli/main.js it runs. */
function tsmuxdVersion(argv: string[] | null): { version: string; from: string } | null {
  const script = argv?.find((a) => /cli[\\/]main\.js$/.test(a));
  if (!script) return null;
  let dir = dirname(script);
  for (let i = 0; i < PACKAGE_SEARCH_DEPTH; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tsmuxd' && pkg.version) return { version: pkg.version, from: join(dir, 'package.json') };
    } catch {
      // not here
    }
  }
  return null;
}

function frameworkVersion(): { version: string; from: string } | null {
  for (const rel of FRAMEWORK_PLISTS) {
    try {
      const dict = parsePlist(readFileSync(join(MOBILE_DEVICE_FRAMEWORK, rel)));
      if (!isPlistDict(dict)) continue;
      const short = dict.CFBundleShortVersionString;
      const build = dict.CFBundleVersion;
      const version = [short, build && build !== short ? `(${String(build)})` : ''].filter(Boolean).join(' ');
      if (version) return { version, from: `MobileDevice.framework/${rel}` };
    } catch {
      // not this layout
    }
  }
  return null;
}

interface VersionFound {
  version: string;
  from: string;
}

function daemonVersion(name: string | null, exe: string | null, argv: string[] | null, platform: NodeJS.Platform, exec: Exec): VersionFound | null {
  if (name === 'tsmuxd') return tsmuxdVersion(argv);
  if (platform === 'darwin' && exe?.startsWith(`${MOBILE_DEVICE_FRAMEWORK}/`)) return frameworkVersion();
  if (platform === 'win32' && name === USBMUXD_PROCESS.win32) {
    const path = exe ?? WINDOWS_SERVICE_EXE;
    if (/'/.test(path)) return null;
    const out = exec('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', `(Get-Item -LiteralPath '${path}').VersionInfo.ProductVersion`]);
    const version = out?.trim();
    return version ? { version, from: `${basename(path)}.exe file version` } : null;
  }
  // libimobiledevice's usbmuxd (Linux, or built on a Mac) prints "usbmuxd 1.1.1".
  if (name === 'usbmuxd' && exe) {
    const version = exec(exe, ['--version'])?.split(/\r?\n/)[0]?.trim();
    return version ? { version, from: `${exe} --version` } : null;
  }
  return null;
}

export interface IdentifyOptions {
  address: SocketAddress;
  platform: NodeJS.Platform;
  probe: ProcessProbe;
  found: DaemonPid;
  /** It answered tsmuxd's stats request. */
  isTsmuxd: boolean;
  /** Its CPU time could be read (the CPU columns are filled). */
  cpuReadable: boolean;
  exec?: Exec;
}

export async function identifyDaemon(o: IdentifyOptions): Promise<DaemonRecord> {
  const exec = o.exec ?? runProgram;
  const { pid } = o.found;
  const exe = pid === undefined ? null : o.probe.executable(pid);
  const argv = pid === undefined ? null : o.probe.commandLine(pid);
  const name = o.isTsmuxd ? 'tsmuxd' : exe ? basename(exe) : null;
  const version = daemonVersion(name, exe, argv, o.platform, exec);
  let buid: string | null = null;
  try {
    buid = await new UsbmuxClient({ address: o.address, timeoutMs: BUID_TIMEOUT_MS, progName: 'tsmuxd-bench' }).readBUID();
  } catch {
    // an old daemon without ReadBUID: the record says null
  }
  return {
    kind: 'daemon',
    name,
    version: version?.version ?? null,
    versionFrom: version?.from ?? null,
    buid,
    address: formatSocketAddress(o.address),
    pid: pid ?? null,
    pidFrom: o.found.from,
    cpuFrom: o.cpuReadable ? o.probe.cpuFrom : null,
    platform: o.platform,
    arch: arch(),
    osRelease: release(),
  };
}

/** One line for people: "usbmuxd 1.1.1 (/usr/sbin/usbmuxd --version), pid 42 (the socket's owner), ...". */
export function describeDaemon(d: DaemonRecord): string {
  const name = d.name ?? 'an unknown daemon';
  // `usbmuxd --version` already starts with the name.
  const what = d.version === null ? name : d.version.startsWith(`${name} `) ? d.version : `${name} ${d.version}`;
  return [
    `${what}${d.versionFrom ? ` (version from ${d.versionFrom})` : ''} at ${d.address}`,
    d.pid === null ? `pid unknown (${d.pidFrom})` : `pid ${d.pid} (${d.pidFrom})`,
    d.cpuFrom ? `CPU from ${d.cpuFrom}` : 'no CPU figures',
    `BUID ${d.buid ?? 'unknown'}`,
    `${d.platform}-${d.arch} ${d.osRelease}`,
  ].join(', ');
}
