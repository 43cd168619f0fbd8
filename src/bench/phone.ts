// The benchmark for a real phone, which has no sink, source or echo: AFC file
// upload and download (StartService com.apple.afc in a lockdown session, with
// the daemon's pair record) and lockdown QueryType round trips. These are
// what a user with a Mac and an iPhone can compare between Apple's usbmuxd
// and ours.
import { randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';

import { AFC_CHUNK, AfcClient } from '../afc/client.js';
import { UsbmuxClient } from '../client/index.js';
import { findDevice, openLockdown, startSession } from '../client/lockdown-session.js';
import { LOCKDOWN_PORT, startServiceTls } from '../lockdown/client.js';
import { hostCredentials } from '../pairing/certificates.js';
import { connectRequest } from './connect-rate.js';
import { connectRate, measureThroughput, type BenchContext } from './run.js';
import { percentile } from './sim-services.js';

const BENCH_FILE = '/tsmuxd-bench.bin';

async function openAfc(ctx: BenchContext): Promise<AfcClient> {
  const usbmux = new UsbmuxClient({ address: ctx.options.address, timeoutMs: 10_000, progName: 'tsmuxd-bench' });
  const device = await findDevice(usbmux, ctx.devices[0].serialNumber);
  const lockdown = await openLockdown(usbmux, device);
  try {
    const record = await startSession(usbmux, lockdown, device.serialNumber);
    const { port, ssl } = await lockdown.startService('com.apple.afc');
    let socket: Duplex = await usbmux.connect(device.deviceId, port);
    if (ssl) socket = await startServiceTls(socket as never, hostCredentials(record));
    return new AfcClient(socket);
  } finally {
    await lockdown.close();
  }
}

async function* blocks(total: number): AsyncIterable<Buffer> {
  const block = randomFillSync(Buffer.allocUnsafe(AFC_CHUNK));
  for (let sent = 0; sent < total; sent += block.length) yield total - sent >= block.length ? block : block.subarray(0, total - sent);
}

async function readAll(afc: AfcClient, total: number): Promise<void> {
  const handle = await afc.open(BENCH_FILE, 'r');
  try {
    for (let got = 0; got < total; ) {
      const chunk = await afc.read(handle, Math.min(AFC_CHUNK, total - got));
      if (chunk.length === 0) throw new Error(`AFC: the file ended after ${got} of ${total} bytes`);
      got += chunk.length;
    }
  } finally {
    await afc.close(handle);
  }
}

export async function benchPhone(ctx: BenchContext): Promise<void> {
  const { options } = ctx;
  const bytes = options.bytes;
  for (let repeat = 1; repeat <= options.repeats; repeat++) {
    if (options.cases.has('up') || options.cases.has('down')) {
      const afc = await openAfc(ctx);
      try {
        const shape = { connections: 1, devices: 1, bytes, via: 'afc' as const, repeat };
        options.emit(await measureThroughput(ctx, { ...shape, direction: 'up' }, async () => void (await afc.upload(BENCH_FILE, blocks(bytes)))));
        if (options.cases.has('down')) options.emit(await measureThroughput(ctx, { ...shape, direction: 'down' }, () => readAll(afc, bytes)));
        await afc.removePath(BENCH_FILE);
      } finally {
        afc.socket.destroy();
      }
    }
    if (options.cases.has('rtt')) {
      const usbmux = new UsbmuxClient({ address: options.address, timeoutMs: 10_000, progName: 'tsmuxd-bench' });
      const lockdown = await openLockdown(usbmux, ctx.devices[0]);
      try {
        const times: number[] = [];
        for (let i = 0; i < options.rttCount; i++) {
          const start = process.hrtime.bigint();
          await lockdown.queryType();
          times.push(Number(process.hrtime.bigint() - start) / 1e6);
        }
        times.sort((a, b) => a - b);
        options.emit({ kind: 'rtt', via: 'lockdown', payloadBytes: 0, count: times.length, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), maxMs: times[times.length - 1], repeat });
      } finally {
        await lockdown.close();
      }
    }
    if (options.cases.has('connect')) {
      const request = connectRequest(ctx.devices[0].deviceId, LOCKDOWN_PORT);
      if (options.connectEcho && repeat === 1) options.log('connect: a real phone has no echo service; each cycle is Connect to lockdown and close (--connect-echo ignored)');
      options.emit(await connectRate(ctx, request, 1, repeat));
    }
  }
}
