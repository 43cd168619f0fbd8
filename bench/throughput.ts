// One connection's throughput over the virtual cable, each way, beside the
// same bytes between the same two processes over a direct Unix socket (no
// mux), plus CPU per GiB and the JS wakeups the data plane caused.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

import { openLoopbackClient } from '../src/devices/loopback-client.js';
import { MuxEngine } from '../src/devices/mux-engine.js';
import { SINK_PORT, SOURCE_PORT } from '../src/sim/ports.js';
import { cpuSeconds, download, GiB, median, spawnDevice, upload } from './lib.js';

export interface ThroughputRow {
  /** mux: through the cable with a phone-like 128 KiB device window;
   *  mux-1MiB: the same with a 1 MiB device window (the host's own ceiling);
   *  direct: a Unix socket between the same two processes, no mux. */
  path: 'mux' | 'mux-1MiB' | 'direct';
  direction: 'to device' | 'from device';
  mibPerSec: number;
  hostCpuSecPerGiB: number;
  deviceCpuSecPerGiB: number;
  jsWakeups: number;
}

async function measure(
  run: () => Promise<void>,
  bytes: number,
  devicePid: number,
  wakeups: () => number,
): Promise<{ mibPerSec: number; hostCpu: number; deviceCpu: number; wakeups: number }> {
  const hostBefore = process.cpuUsage();
  const deviceBefore = cpuSeconds(devicePid);
  const wakeBefore = wakeups();
  const start = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const host = process.cpuUsage(hostBefore);
  return {
    mibPerSec: bytes / (1 << 20) / seconds,
    hostCpu: (host.user + host.system) / 1e6,
    deviceCpu: cpuSeconds(devicePid) - deviceBefore,
    wakeups: wakeups() - wakeBefore,
  };
}

export async function benchThroughput(bytes = GiB, repeats = 3): Promise<ThroughputRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-bench-'));
  const socketDir = join(dir, 'svc');
  mkdirSync(socketDir);
  const engine = new MuxEngine();
  const cable = join(dir, 'cable');
  engine.listenCable(cable);
  const nextReady = () => new Promise<number>((resolve) => engine.once('ready', (r) => resolve(r.handle)));
  let ready = nextReady();
  const device = await spawnDevice(cable, socketDir);
  const handle = await ready;
  const pid = device.child.pid!;
  // A second phone with a wide window shows what the host itself can do.
  const wideDir = join(dir, 'svc-wide');
  mkdirSync(wideDir);
  ready = nextReady();
  const wide = await spawnDevice(cable, wideDir, ['--window', String(1 << 20)]);
  const wideHandle = await ready;
  const rows: ThroughputRow[] = [];
  try {
    const cases = [
      { direction: 'to device' as const, port: SINK_PORT, run: upload },
      { direction: 'from device' as const, port: SOURCE_PORT, run: download },
    ];
    for (const c of cases) {
      const paths = c.direction === 'to device' ? (['mux', 'mux-1MiB', 'direct'] as const) : (['mux', 'direct'] as const);
      for (const path of paths) {
        const samples = [];
        const devicePid = path === 'mux-1MiB' ? wide.child.pid! : pid;
        for (let i = 0; i < repeats; i++) {
          let socket: net.Socket;
          if (path !== 'direct') {
            socket = (await openLoopbackClient(engine, path === 'mux' ? handle : wideHandle, c.port, dir)).socket;
          } else {
            socket = net.connect(device.services[c.port] as string);
            await once(socket, 'connect');
          }
          samples.push(await measure(() => c.run(socket, bytes), bytes, devicePid, () => engine.stats().jsWakeups));
          socket.destroy();
        }
        const perGiB = GiB / bytes;
        rows.push({
          path,
          direction: c.direction,
          mibPerSec: median(samples.map((s) => s.mibPerSec)),
          hostCpuSecPerGiB: median(samples.map((s) => s.hostCpu)) * perGiB,
          deviceCpuSecPerGiB: median(samples.map((s) => s.deviceCpu)) * perGiB,
          jsWakeups: median(samples.map((s) => s.wakeups)),
        });
      }
    }
  } finally {
    engine.close();
    device.child.kill('SIGTERM');
    wide.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
