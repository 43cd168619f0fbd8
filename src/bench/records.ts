// What one benchmark measurement prints (one JSON object per line with
// --json). The lab and cable benchmarks parse these lines, so the shapes are
// a contract: add fields, never rename them.

export interface ThroughputRecord {
  kind: 'throughput';
  direction: 'up' | 'down';
  /** Connections per device, all moving at once. */
  connections: number;
  devices: number;
  /** Bytes moved in all. */
  bytes: number;
  seconds: number;
  /** 2^20 bytes per second. */
  mibPerSec: number;
  /** 10^6 bytes per second, the unit of the usbmuxd reference figures. */
  mbPerSec: number;
  /** The daemon's own CPU time over the transfer (null when its pid is unknown). */
  daemonCpuSec: number | null;
  cpuSecPerGiB: number | null;
  /** Native-to-JS callbacks in a tsmuxd daemon over the transfer (null for other daemons). */
  jsWakeups: number | null;
  jsWakeupsPerGiB: number | null;
  /** 'sim' (sink/source services) or 'afc' (a real phone's AFC file upload/download). */
  via: 'sim' | 'afc';
  /**
   * Through the phone's CoreDeviceProxy tunnel (tsmuxd's TunnelConnect to the
   * same service port inside it) rather than a plain mux Connect; absent on
   * plain records.
   */
  tunnel?: true;
  /** With `tunnel`: through the tunnel's kernel interface (a plain socket to the phone's tunnel address), not TunnelConnect. */
  kernel?: true;
  repeat: number;
}

export interface RttRecord {
  kind: 'rtt';
  /** 'echo': payload round trips through the sim's echo; 'lockdown': QueryType round trips. */
  via: 'echo' | 'lockdown';
  /** Through the phone's CoreDeviceProxy tunnel (as on ThroughputRecord); absent on plain records. */
  tunnel?: true;
  /** As on ThroughputRecord. */
  kernel?: true;
  payloadBytes: number;
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  repeat: number;
}

export interface ConnectRateRecord {
  kind: 'connect-rate';
  concurrency: number;
  cycles: number;
  seconds: number;
  perSec: number;
  /** The daemon's CPU time per Connect cycle, in µs (null when its pid is unknown). */
  daemonCpuUsPerConnect: number | null;
  /** Each cycle's wall time, socket open to close (absent on records made before cycles were timed). */
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /** 1: each cycle sent one byte to the echo port and read it back before closing (--connect-echo); absent: Connect and close. */
  echoBytes?: number;
  repeat: number;
}

export interface IdleRecord {
  kind: 'idle';
  connections: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  rssBytesPerConnection: number;
  /** Seconds to open them all. */
  openSeconds: number;
  repeat: number;
}

export type BenchRecord = ThroughputRecord | RttRecord | ConnectRateRecord | IdleRecord;

/**
 * Which daemon was measured: the first line of `tsmuxd bench --json` and the
 * `daemon` of --out, apart from the measurements (it is no BenchRecord, so
 * the figures of a Mac and of the lab keep one shape). null: not known here.
 */
export interface DaemonRecord {
  kind: 'daemon';
  /** 'tsmuxd' (it answers the stats request), else its executable's name: 'usbmuxd', 'AppleMobileDeviceService'. */
  name: string | null;
  version: string | null;
  /** Where the version was read: a package.json, `PATH --version`, the MobileDevice framework's Info.plist, a file version. */
  versionFrom: string | null;
  /** ReadBUID's answer. */
  buid: string | null;
  /** As -S takes it: UNIX:/var/run/usbmuxd, 127.0.0.1:27015. */
  address: string;
  pid: number | null;
  /** How the pid was found ('--daemon-pid', "the socket's owner", 'the only process named usbmuxd') or why not. */
  pidFrom: string;
  /** Where the CPU columns come from ('/proc/PID/stat', 'ps -o time=', 'Get-Process TotalProcessorTime'); null: they are empty. */
  cpuFrom: string | null;
  /** Where the bench ran (process.platform, os.arch(), os.release()). */
  platform: string;
  arch: string;
  osRelease: string;
}

export const GiB = 1 << 30;
export const MiB = 1 << 20;

export function perGiB(value: number | null, bytes: number): number | null {
  return value === null || bytes === 0 ? null : (value * GiB) / bytes;
}
