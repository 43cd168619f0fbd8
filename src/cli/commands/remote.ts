// `tsmuxd remote add HOST:PORT [--ca F --cert F --key F | --insecure] | ls | rm HOST:PORT`:
// the remote usbmux hosts the daemon merges into its socket (docs/remote.md),
// through usbfluxd's AddInstance / Instances / RemoveInstance. TLS is the
// default: the files given here, else the daemon's own (--remote-cert...);
// plain TCP only with --insecure. The daemon lets only root and its own
// user do this.
import { Channel } from '../../client/channel.js';
import type { PlistDict } from '../../protocol/plist-codec.js';
import { ADD_INSTANCE, ADD_INSTANCE_TLS, INSTANCES, parseHostPort, REMOVE_INSTANCE, USBFLUXD_DEFAULT_PORT } from '../../protocol/remote-messages.js';
import { loadRemoteTls } from '../../remote/remote-tls.js';
import { COMMON_HELP, COMMON_OPTIONS, daemonAddress, parseCommandArgs, table, UsageError } from './common.js';

export const REMOTE_HELP = `usage: tsmuxd remote add HOST[:PORT] [--ca FILE --cert FILE --key FILE | --insecure]
       tsmuxd remote ls [--json]
       tsmuxd remote rm HOST[:PORT]
  the remote usbmux hosts whose phones the daemon lists as its own (PORT: ${USBFLUXD_DEFAULT_PORT})
      --ca, --cert, --key   this host's TLS identity for that remote (default: the daemon's)
      --insecure            plain TCP, unauthenticated (usbfluxd's kind of remote)
${COMMON_HELP}`;

/** What the daemon's Result numbers mean here. */
const RESULT_TEXT: Record<number, string> = {
  1: 'the daemon does not know remote hosts (not tsmuxd or usbfluxd)',
  2: 'already added (add), or not there (rm)',
  13: 'refused: only root and the daemon\'s user may change remote hosts',
};

async function ask(socket: string | undefined, request: PlistDict): Promise<{ result?: number; dict?: PlistDict }> {
  const channel = await Channel.open({ address: daemonAddress(socket), version: 1, timeoutMs: 10_000, progName: 'tsmuxd-remote-cli' });
  try {
    const r = await channel.reply(channel.sendPlist(request));
    if (r.kind === 'result') return { result: r.result };
    if (r.kind === 'plist') return { dict: r.dict };
    throw new Error('an unexpected answer from the daemon');
  } finally {
    channel.close();
  }
}

function check(result: number | undefined, what: string): number {
  if (result === 0) return 0;
  process.stderr.write(`tsmuxd remote: ${what}: ${RESULT_TEXT[result ?? -1] ?? `the daemon answered ${result}`}\n`);
  return 1;
}

export async function runRemote(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: argv,
    allowPositionals: true,
    options: { ...COMMON_OPTIONS, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, insecure: { type: 'boolean' } },
  });
  if (values.help) {
    process.stdout.write(REMOTE_HELP);
    return 0;
  }
  const [verb, where, extra] = positionals;
  if (extra !== undefined || !['add', 'ls', 'rm'].includes(verb ?? '') || (verb !== 'ls') !== (where !== undefined)) {
    throw new UsageError(`tsmuxd remote: add HOST:PORT, ls, or rm HOST:PORT\n${REMOTE_HELP}`);
  }
  if (verb === 'ls') {
    // All of them, with their state: usbfluxd's answer lists only those that are up.
    const { dict, result } = await ask(values.socket, { MessageType: INSTANCES, tsmuxdAll: true });
    if (!dict) return check(result, 'ls');
    const instances = (dict.Instances ?? {}) as Record<string, PlistDict>;
    const rows = Object.entries(instances).map(([n, i]) => ({
      instance: Number(n),
      host: String(i.Host),
      port: Number(i.Port),
      tls: i.tsmuxdTls === true,
      state: typeof i.tsmuxdState === 'string' ? i.tsmuxdState : 'up',
      lastError: typeof i.tsmuxdLastError === 'string' ? i.tsmuxdLastError : '',
      devices: (i.Devices as string[] | undefined) ?? [],
    }));
    if (values.json) for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
    else {
      const lines = table(
        ['#', 'HOST', 'PORT', 'TLS', 'STATE', 'PHONES'],
        rows.map((r) => [String(r.instance), r.host, String(r.port), r.tls ? 'yes' : 'no', r.state === 'up' ? 'up' : `${r.state}: ${r.lastError}`, r.devices.join(' ') || '-']),
      );
      process.stdout.write(lines.map((l) => `${l}\n`).join(''));
    }
    return 0;
  }
  let target;
  try {
    target = parseHostPort(where!, USBFLUXD_DEFAULT_PORT);
  } catch (err) {
    throw new UsageError(`tsmuxd remote: ${(err as Error).message}`);
  }
  const request: PlistDict = { MessageType: verb === 'add' ? ADD_INSTANCE : REMOVE_INSTANCE, HostAddress: target.host, PortNumber: target.port };
  if (verb === 'add') {
    const named = [values.ca, values.cert, values.key].filter((f) => f !== undefined).length;
    if (named !== 0 && named !== 3) throw new UsageError('tsmuxd remote add: --ca, --cert and --key go together');
    if (named && values.insecure) throw new UsageError('tsmuxd remote add: --insecure or TLS files, not both');
    if (values.insecure) request[ADD_INSTANCE_TLS.insecure] = true;
    if (named) {
      const tls = await loadRemoteTls({ ca: values.ca!, cert: values.cert!, key: values.key! });
      Object.assign(request, { [ADD_INSTANCE_TLS.ca]: tls.caPem, [ADD_INSTANCE_TLS.cert]: tls.certPem, [ADD_INSTANCE_TLS.key]: tls.keyPem });
    }
  }
  const { result } = await ask(values.socket, request);
  return check(result, `${verb} ${where}`);
}
