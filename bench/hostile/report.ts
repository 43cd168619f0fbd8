// The hostile benchmark's table: per attack, the victim's throughput against
// its no-attack baseline (the issue's bar: within 20%), the daemon's RSS and
// file descriptors around the attack, and the CPU the attacker itself burnt
// (it shares the machine's cores with the daemon and the victim).
import { table } from '../../src/cli/commands/common.js';

export interface CaseResult {
  name: string;
  upMBps: number;
  downMBps: number;
  /** Under attack over the baseline; the lower of up and down. */
  ratio: number | null;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssAfterMiB: number;
  fdsBefore: number;
  fdsPeak: number;
  fdsAfter: number;
  /** CPU used while the victim measured, in % of one core. */
  attackerCpuPct: number | null;
  daemonCpuPct: number;
  attackerStats?: Record<string, number>;
  error?: string;
}

export const TARGET_RATIO = 0.8;

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f2 = (n: number | null) => (n !== null && Number.isFinite(n) ? n.toFixed(2) : '-');

export function printHostileReport(results: CaseResult[], meta: { bytes: number; repeats: number }): string[] {
  const base = results[0];
  const rows = results.map((r) => [
    r.name,
    r === base ? f1(r.upMBps) : `${f1(base.upMBps)} -> ${f1(r.upMBps)}`,
    r === base ? f1(r.downMBps) : `${f1(base.downMBps)} -> ${f1(r.downMBps)}`,
    f2(r.ratio),
    r === base || r.name.startsWith('baseline') ? '' : r.ratio !== null && r.ratio >= TARGET_RATIO ? `>= ${TARGET_RATIO} ok` : `>= ${TARGET_RATIO} MISSED`,
    `${f1(r.rssBeforeMiB)} / ${f1(r.rssPeakMiB)} / ${f1(r.rssAfterMiB)}`,
    `${r.fdsBefore} / ${r.fdsPeak} / ${r.fdsAfter}`,
    r.attackerCpuPct === null ? '-' : f1(r.attackerCpuPct),
    f1(r.daemonCpuPct),
  ]);
  const lines = [
    `hostile peers: victim = upload to the sink and download from the source of a healthy phone, at once, ${meta.bytes >> 20} MiB each, median of ${meta.repeats}`,
    '',
    ...table(
      ['case', 'victim up MB/s', 'victim down MB/s', 'ratio', 'target', 'daemon RSS MiB before/peak/after', 'daemon fds before/peak/after', 'attacker CPU %', 'daemon CPU %'],
      rows,
    ),
    '',
    'ratio: the lower of up and down, under attack over the baseline. CPU: % of one core while the victim measured.',
    'baseline (end): the victim again with no attack, after all of them; far from 1.00, the machine itself was noisy.',
  ];
  for (const r of results) {
    if (r.attackerStats) lines.push(`  ${r.name}: attacker did ${Object.entries(r.attackerStats).map(([k, v]) => `${k}=${v}`).join(', ')}`);
    if (r.error) lines.push(`  ${r.name}: ERROR ${r.error}`);
  }
  for (const line of lines) process.stdout.write(`${line}\n`);
  return lines;
}
