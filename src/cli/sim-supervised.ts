// `tsmuxd sim --cable PATH [--count N]`: one child process per phone under
// the supervisor (src/supervisor), which restarts a crashed phone as the
// same phone. The children's JSON lines come out on our stdout as they are
// (each with its phone's index); stdin commands and signals go to the phone
// they name, or to all; the supervisor's steps go to stderr as log lines
// (--json-log for JSON). SIGTERM or SIGINT stops every phone, then us.
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { Logger } from '../util/log.js';
import type { TrustMode } from '../protocol/sim-control.js';
import { SimSupervisor } from '../supervisor/supervisor.js';
import { emit, positive, type SimValues } from './sim-command.js';

/** The flags every child gets as they were given. */
const PASSED_ON = [
  'serial',
  'trust-delay-ms',
  'product-version',
  'product-type',
  'device-name',
  'window',
  'max-packet-size',
  'tunnel-max-mtu',
  'tunnel-drop-oversize',
  'tunnel-loss-rate',
] as const;

export async function runSupervisedSims(values: SimValues): Promise<number> {
  const count = positive('count', values.count) ?? 1;
  const args: string[] = [];
  for (const flag of PASSED_ON) if (values[flag] !== undefined) args.push(`--${flag}`, String(values[flag]));
  if (values['no-reenumerate']) args.push('--no-reenumerate');
  const perPhone = (dir: string | undefined) => (index: number) => (dir && count > 1 ? join(dir, `sim-${index}`) : dir);
  const log = new Logger({ json: values['json-log'], verbosity: 4 });
  const rsdPort = positive('rsd-port', values['rsd-port']);
  if (rsdPort !== undefined && rsdPort + count - 1 > 65535) throw new Error('--rsd-port is past 65535');

  const supervisor = await SimSupervisor.start({
    cable: values.cable!,
    count,
    log,
    trust: values.trust as TrustMode | undefined,
    udids: values.udid ? [values.udid] : undefined,
    stateDir: perPhone(values['state-dir']),
    socketDir: perPhone(values['socket-dir']),
    args,
    // Each phone its own RSD port: N + index (0 stays 0, any free port).
    argsFor: (index) => (rsdPort === undefined ? [] : ['--rsd-port', String(rsdPort === 0 ? 0 : rsdPort + index)]),
    onEvent: (index, event) => emit({ ...event, index }),
  });

  const command = (words: string[]): void => {
    const [verb, index, ms] = words;
    try {
      supervisor.command(index === undefined ? undefined : Number(index), verb!, ms === undefined ? undefined : Number(ms));
    } catch (err) {
      emit({ event: 'error', message: (err as Error).message });
    }
  };
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
    process.on('SIGUSR1', () => command(['trust']));
    process.on('SIGUSR2', () => command(['deny']));
    process.on('SIGHUP', () => command(['replug']));
    lines.on('line', (line) => {
      const words = line.trim().split(/\s+/).filter(Boolean);
      if (words[0] === 'quit') resolve();
      else if (words.length) command(words);
    });
  });
  lines.close();
  process.stdin.destroy();
  log.notice(`stopping ${count} simulated phone(s)`);
  await supervisor.stop();
  return 0;
}
