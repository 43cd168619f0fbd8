// Debian's tshark on a capture file, for the capture tests (docs/capture.md).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { requireTool } from './system-tools.js';

const run = promisify(execFile);

/** false when tshark is here; otherwise the skip line naming its package. */
export const tsharkMissing = (): string | false => requireTool('tshark', 'tshark');

export async function tshark(args: string[]): Promise<string> {
  // Its "Running as user root" warning goes to stderr; a failure throws.
  const { stdout } = await run('tshark', args, { maxBuffer: 256 << 20 });
  return stdout;
}

/** Both directions of `tshark -z follow,<proto>,raw,N`: node 0 (the opener) and node 1. */
export async function followRaw(file: string, proto: 'tcp' | 'tls', stream: number): Promise<{ fromOpener: Buffer; toOpener: Buffer }> {
  const out = await tshark(['-r', file, '-q', '-z', `follow,${proto},raw,${stream}`]);
  const lines = out.split('\n');
  const from: string[] = [];
  const to: string[] = [];
  let inBody = false;
  for (const line of lines) {
    if (line.startsWith('Node 1:')) {
      inBody = true;
      continue;
    }
    if (!inBody) continue;
    if (line.startsWith('=====')) break;
    if (line.startsWith('\t')) to.push(line.trim());
    else if (line.trim()) from.push(line.trim());
  }
  return { fromOpener: Buffer.from(from.join(''), 'hex'), toOpener: Buffer.from(to.join(''), 'hex') };
}

/** How many packets of `file` match the display filter. */
export async function countMatching(file: string, filter: string, options: string[] = []): Promise<number> {
  const out = await tshark(['-r', file, ...options, '-Y', filter, '-T', 'fields', '-e', 'frame.number']);
  return out.split('\n').filter((l) => l.trim()).length;
}
