// The simulated phone as users run it: `tsmuxd sim` on a daemon's cable
// (UDID and iOS version from the command line, unplug / plug / replug on
// command), `tsmuxd --sim N` with each phone in a child process of its own,
// and the state directory that keeps a phone the same phone across restarts.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { UsbmuxClient } from '../src/client/index.js';
import { udidToSerial, openSimState } from '../src/sim/state.js';
import { findOnPath, isAlive, MAIN_JS, run, spawnDaemon } from './helpers/daemon-process.js';
import { requireTool } from './helpers/system-tools.js';
import { SLOW, startDaemon, tempDir, visibleDevices, waitUntil } from './helpers/usbmuxd-harness.js';

t.test('udidToSerial: both UDID forms, and nothing else', async (t) => {
  t.equal(udidToSerial('00008101-000A1B2C3D4E5F60'), '00008101000A1B2C3D4E5F60');
  t.equal(udidToSerial('0123456789abcdef0123456789ABCDEF01234567'), '0123456789abcdef0123456789abcdef01234567');
  for (const bad of ['', '1234', '00008101000A1B2C3D4E5F60', 'zz008101-000A1B2C3D4E5F60', '00008101-000A1B2C3D4E5F6']) {
    t.throws(() => udidToSerial(bad), /not a UDID/, `'${bad}' is refused`);
  }
});

t.test('the state directory keeps serial, values and device key', async (t) => {
  const dir = join(tempDir(t), 'phone');
  const first = openSimState(dir, { identity: { productVersion: '16.7' }, newSerial: () => '00008101000000000000BEEF' });
  t.equal(first.serial, '00008101000000000000BEEF', 'a new phone takes the new serial');
  t.equal(statSync(join(dir, 'device-key.pem')).mode & 0o777, 0o600, 'the key file is private');
  t.equal(statSync(dir).mode & 0o777, 0o700, 'so is the directory');
  const again = openSimState(dir, { newSerial: () => 'unused' });
  t.equal(again.serial, first.serial, 'the same serial after a restart');
  t.equal(again.identity.productVersion, '16.7', 'the same iOS version');
  t.equal(
    again.deviceKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    first.deviceKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    'the same device key',
  );
  const updated = openSimState(dir, { identity: { productVersion: '17.5' }, newSerial: () => 'unused' });
  t.equal(updated.identity.productVersion, '17.5', 'an update replaces the version');
  t.match(JSON.parse(readFileSync(join(dir, 'identity.json'), 'utf8')), { identity: { productVersion: '17.5' } }, 'and is saved');
  t.throws(
    () => openSimState(dir, { serial: '00008101000000000000F00D', newSerial: () => 'unused' }),
    /belongs to the phone with serial 00008101000000000000BEEF/,
    'another serial in the same directory is refused',
  );
});

interface SimCli {
  events: Array<Record<string, unknown>>;
  send(line: string): void;
  next(event: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

function startSimCli(t: Parameters<typeof tempDir>[0], args: string[]): SimCli {
  const child = spawn(process.execPath, [MAIN_JS, 'sim', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const events: Array<Record<string, unknown>> = [];
  let seen = 0;
  createInterface({ input: child.stdout }).on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>));
  return {
    events,
    send: (line) => child.stdin.write(`${line}\n`),
    async next(event) {
      return waitUntil(() => {
        const i = events.findIndex((e, n) => n >= seen && e.event === event);
        if (i < 0) return null;
        seen = i + 1;
        return events[i];
      }, `the sim's '${event}' line`);
    },
    async stop() {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      if (code !== 0) throw new Error(`tsmuxd sim exited with ${code}`);
    },
  };
}

t.test('tsmuxd sim: --udid and --product-version, then unplug, plug and SIGHUP replug', async (t) => {
  const dir = tempDir(t);
  const cable = join(dir, 'cable');
  const setup = await startDaemon(t, { sims: 0, cables: [cable] });
  const udid = '00008030-001A35E22E88802E';
  const sim = startSimCli(t, ['--cable', cable, '--udid', udid, '--product-version', '16.7.2']);
  const ready = await sim.next('ready');
  t.match(ready, { udid, serial: '00008030001A35E22E88802E' }, 'ready, with the UDID asked for');
  const [first] = await visibleDevices(setup.address, 1);
  t.equal(first!.serialNumber, udid, 'the daemon lists that UDID');

  const info = findOnPath('ideviceinfo');
  if (!info) t.pass('ideviceinfo -s -k ProductVersion', { skip: requireTool('ideviceinfo', 'libimobiledevice-utils') });
  else {
    const env = { ...process.env, USBMUXD_SOCKET_ADDRESS: setup.address };
    const r = await run(info, ['-u', udid, '-s', '-k', 'ProductVersion'], { env, timeoutMs: SLOW });
    t.equal(r.stdout, '16.7.2\n', `ideviceinfo -s -k ProductVersion: ${JSON.stringify(r.stdout)}`);
  }

  const client = new UsbmuxClient({ address: setup.address, timeoutMs: 5000 });
  sim.send('unplug');
  await sim.next('unplugged');
  await waitUntil(async () => (await client.listDevices()).length === 0, 'the phone to leave the list');
  t.pass('unplug: the daemon no longer lists it');
  sim.send('plug');
  await sim.next('plugged');
  const [second] = await visibleDevices(setup.address, 1);
  t.not(second!.deviceId, first!.deviceId, `plug: back as a new device (${first!.deviceId} -> ${second!.deviceId})`);
  t.equal(second!.serialNumber, udid, 'with the same UDID');

  // The same through a signal, as `kill -HUP` from a shell.
  const child = ready.pid as number;
  process.kill(child, 'SIGHUP');
  await sim.next('plugged');
  const third = await waitUntil(async () => {
    const l = await client.listDevices();
    return l.length === 1 && l[0]!.deviceId !== second!.deviceId ? l[0] : null;
  }, 'the replugged phone');
  t.equal(third.serialNumber, udid, 'SIGHUP: replugged, same UDID, new DeviceID');
  await sim.stop();
  t.pass('SIGTERM: exit 0');
});

t.test('tsmuxd sim keeps plugging back in when the daemon comes back', async (t) => {
  const dir = tempDir(t);
  const cable = join(dir, 'cable');
  const a = await startDaemon(t, { sims: 0, cables: [cable] });
  const sim = startSimCli(t, ['--cable', cable, '--count', '2']);
  const readies = [await sim.next('ready'), await sim.next('ready')];
  t.same(readies.map((r) => r.index).sort(), [0, 1], 'a ready line per phone, with its index');
  t.not(readies[0]!.pid, readies[1]!.pid, `each phone in its own child process (${readies.map((r) => r.pid).join(', ')})`);
  const before = await visibleDevices(a.address, 2);
  await a.daemon.stop();
  await sim.next('link-lost');
  const b = await startDaemon(t, { sims: 0, cables: [cable] });
  const after = await visibleDevices(b.address, 2, 30_000);
  t.same(
    after.map((d) => d.serialNumber).sort(),
    before.map((d) => d.serialNumber).sort(),
    'both phones are back on the restarted daemon',
  );
  await sim.stop();
});

t.test('tsmuxd --sim 2: two child processes, same UDIDs after a restart, none left behind', async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'usbmuxd.sock');
  const args = ['-f', '--sim', '2', '-S', socket, '-P', join(dir, 'pid'), '-C', join(dir, 'lockdown'), '--sim-state', join(dir, 'sims')];
  const udids = async () => (await visibleDevices(`UNIX:${socket}`, 2)).map((d) => d.serialNumber).sort();

  const first = spawnDaemon(t, args);
  // Two new phones make their RSA keys first; the machine may be busy.
  await first.ready(60_000);
  const before = await udids();
  const children = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === first.pid;
      } catch {
        return false;
      }
    })
    .map(Number);
  t.equal(children.length, 2, `the daemon has two child processes (${children.join(', ')})`);
  t.same(readdirSync(join(dir, 'sims')).sort(), ['sim-0', 'sim-1'], 'one state directory per phone');
  t.same(await first.stop(), { code: 0, signal: null }, 'SIGTERM: exit 0');
  await waitUntil(() => children.every((pid) => !isAlive(pid)), 'the sims to exit');
  t.pass('no sim outlives the daemon');

  const second = spawnDaemon(t, args);
  await second.ready(60_000);
  t.same(await udids(), before, 'the same phones after a restart');
  t.same(await second.stop(), { code: 0, signal: null });
});
