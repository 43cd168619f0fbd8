// Debian's own libimobiledevice clients (idevice_id, iproxy, inetcat, built on
// libusbmuxd) against the daemon run as a child process with one simulated
// phone: device listing, and bulk data through the echo service on port 7.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import { UsbmuxClient } from '../src/client/index.js';
import {
  connectWithRetry,
  findOnPath,
  freePort,
  run,
  spawnDaemon,
  tempDir,
  waitUntil,
  type Exit,
} from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { echoWindowed, type EchoResult } from './helpers/windowed-echo.js';

const MiB = 1024 * 1024;
const ECHO = 7;

function describeRun(cmd: string, r: { code: number | null; signal: string | null; stdout: string; stderr: string; ms?: number }): string {
  const ms = r.ms === undefined ? '' : ` in ${r.ms} ms`;
  return [
    `$ ${cmd}`,
    `exit ${r.code ?? r.signal}${ms}`,
    `stdout: ${JSON.stringify(r.stdout)}`,
    `stderr: ${JSON.stringify(r.stderr)}`,
  ].join('\n');
}

function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

const dir = tempDir(t, 'tsmuxd-real-');
const socketPath = join(dir, 'usbmuxd.sock');
const daemonArgs = ['-f', '--no-usb', '--sim', '1', '-S', socketPath, '-P', join(dir, 'pid'), '-C', join(dir, 'lockdown'), '--sim-state', join(dir, 'sims')];
const daemon = spawnDaemon(t, daemonArgs);
const address = await daemon.ready();
const env = { ...process.env, USBMUXD_SOCKET_ADDRESS: address };
// The simulated phone is visible once its mux handshake is done.
const attached = await daemon.stderr.waitFor(/device (\d+) attached: (\S+)/, 15_000, daemon.exited);
const devices = await waitUntil(
  async () => {
    const list = await new UsbmuxClient({ address }).listDevices();
    return list.length > 0 ? list : undefined;
  },
  10_000,
  'the simulated phone in ListDevices',
);
const udid = devices[0].serialNumber;
t.comment(`daemon: node dist/src/cli/main.js ${daemonArgs.join(' ')}`);
t.comment(`daemon stdout: ${JSON.stringify(daemon.stdout.text)}`);
t.comment(`daemon log says device ${attached[1]} is ${attached[2]}; ListDevices says ${devices[0].deviceId} is ${udid}`);

t.test('the daemon announces its socket and one simulated phone', async (t) => {
  t.equal(address, `UNIX:${socketPath}`, 'the export line names the -S path');
  t.equal(devices.length, 1, 'ListDevices has exactly one device');
  t.equal(attached[2], udid, 'the log and ListDevices agree on the UDID');
  t.equal(Number(attached[1]), devices[0].deviceId, 'and on the DeviceID');
});

t.test('idevice_id -l prints exactly the simulated UDID', { skip: requireTool('idevice_id', 'libimobiledevice-utils') }, async (t) => {
  const tool = findOnPath('idevice_id')!;
  const r = await run(tool, ['-l'], { env, timeoutMs: 10_000 });
  t.comment(describeRun(`USBMUXD_SOCKET_ADDRESS=${address} idevice_id -l`, r));
  t.notOk(r.timedOut, 'idevice_id -l finished within 10 s');
  t.equal(r.code, 0, 'exit status 0');
  t.equal(r.stdout, `${udid}\n`, 'stdout is the UDID and a newline, nothing else');
});

t.test('idevice_id -n finishes without hanging', { skip: requireTool('idevice_id', 'libimobiledevice-utils') }, async (t) => {
  const tool = findOnPath('idevice_id')!;
  const r = await run(tool, ['-n'], { env, timeoutMs: 10_000 });
  t.comment(describeRun(`USBMUXD_SOCKET_ADDRESS=${address} idevice_id -n`, r));
  t.notOk(r.timedOut, 'idevice_id -n finished within 10 s');
  t.equal(r.code, 0, 'exit status 0');
  t.equal(r.stdout, '', 'there are no network devices to list');
});

t.test('iproxy LOCAL:7 carries 64 MiB through the echo service intact', { skip: requireTool('iproxy', 'libusbmuxd-tools') }, async (t) => {
  const tool = findOnPath('iproxy')!;
  const port = await freePort();
  // iproxy printf()s to a pipe, which stdio buffers until exit; stdbuf makes
  // its lines visible as they are written (the last ones survive the SIGTERM).
  const stdbuf = findOnPath('stdbuf');
  const [cmd, args] = stdbuf ? [stdbuf, ['-oL', '-eL', tool, `${port}:${ECHO}`]] : [tool, [`${port}:${ECHO}`]];
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = exitOf(child);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  const socket = await Promise.race([
    connectWithRetry(port, '127.0.0.1', 10_000),
    exited.then((e) => {
      throw new Error(`iproxy exited (${e.code ?? e.signal}) before accepting: ${stdout}${stderr}`);
    }),
  ]);
  socket.setNoDelay(true);
  const total = 64 * MiB;
  const window = 1 * MiB;
  let r: EchoResult | undefined;
  try {
    r = await echoWindowed(socket, socket, total, window, 128 * 1024, 120_000);
  } catch (err) {
    t.fail(`64 MiB through iproxy: ${(err as Error).message}`);
  }
  socket.destroy();
  // Let iproxy notice the closed connection (it prints nothing for that, but
  // its connection thread must not take the process down).
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(child.exitCode, null, 'iproxy is still running after the connection closed');
  child.kill('SIGTERM');
  const e = await exited;
  t.comment(
    describeRun(`USBMUXD_SOCKET_ADDRESS=${address} ${stdbuf ? 'stdbuf -oL -eL ' : ''}iproxy ${port}:${ECHO}   (stopped with SIGTERM)`, {
      ...e,
      stdout,
      stderr,
    }),
  );
  if (!r) return;
  t.equal(r.bytes, total, 'every byte came back');
  t.equal(r.received, r.sent, 'the SHA-256 of the echo equals that of what was sent');
  t.comment(`sha256 ${r.sent}`);
  t.comment(
    `iproxy echo: ${total / MiB} MiB each way in ${Math.round(r.ms)} ms = ${(total / MiB / (r.ms / 1000)).toFixed(1)} MiB/s ` +
      `(${window / MiB} MiB in flight at most)`,
  );
  t.match(stdout, new RegExp(`Creating listening port ${port} for device port ${ECHO}`), 'iproxy set up the port pair');
  t.match(stdout, new RegExp(`Requesting connecion to USB device handle \\d+ \\(serial: ${udid}\\), port ${ECHO}`), 'and connected to the simulated phone');
});

t.test('inetcat 7 carries a few MiB through stdin/stdout intact', { skip: requireTool('inetcat', 'libusbmuxd-tools') }, async (t) => {
  const tool = findOnPath('inetcat')!;
  const child = spawn(tool, [String(ECHO)], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.on('error', () => {});
  const exited = exitOf(child);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const total = 8 * MiB;
  // inetcat (libusbmuxd 2.0.2) writes to its non-blocking usbmuxd socket with
  // write() and ignores the result, so any 4 KiB block that meets a full
  // socket buffer (EAGAIN) is silently dropped. Keeping no more in flight than
  // that buffer always holds means it never fills; with 256 KiB in flight
  // 12-40 KiB (whole 4096-byte blocks) go missing on most runs.
  const window = 64 * 1024;
  let r: EchoResult | undefined;
  try {
    r = await Promise.race([
      echoWindowed(child.stdin!, child.stdout!, total, window, 16 * 1024, 30_000),
      exited.then((e) => {
        throw new Error(`inetcat exited (${e.code ?? e.signal}) early: ${stderr}`);
      }),
    ]);
  } catch (err) {
    t.fail(`${total / MiB} MiB through inetcat: ${(err as Error).message}`);
  }
  // End of stdin is inetcat's signal to close the connection and exit.
  child.stdin!.end();
  let extra = 0;
  child.stdout!.on('data', (d: Buffer) => (extra += d.length));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const e = await exited;
  clearTimeout(timer);
  t.comment(
    describeRun(`USBMUXD_SOCKET_ADDRESS=${address} inetcat ${ECHO}   (stdin: ${total / MiB} MiB of random bytes, then EOF)`, {
      ...e,
      stdout: `<${(r?.bytes ?? 0) + extra} bytes>`,
      stderr,
    }),
  );
  t.equal(e.code, 0, 'inetcat exited 0 at the end of its input');
  if (!r) return;
  t.equal(r.bytes, total, 'every byte came back');
  t.equal(extra, 0, 'and nothing more');
  t.equal(r.received, r.sent, 'the SHA-256 of the echo equals that of what was sent');
  t.comment(`sha256 ${r.sent}`);
  t.comment(
    `inetcat echo: ${total / MiB} MiB each way in ${Math.round(r.ms)} ms = ${(total / MiB / (r.ms / 1000)).toFixed(1)} MiB/s ` +
      `(${window / 1024} KiB in flight at most)`,
  );
});

t.test('the daemon is still healthy after the clients and stops cleanly', async (t) => {
  const list = await new UsbmuxClient({ address }).listDevices();
  t.equal(list.length, 1, 'the phone is still listed');
  t.equal(daemon.exit(), null, 'the daemon did not exit');
  const e = await daemon.stop(10_000);
  t.same(e, { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.notMatch(daemon.stderr.text, /\[(error|fatal)\]/, 'no error was logged');
});
