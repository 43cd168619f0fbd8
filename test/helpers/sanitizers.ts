// What changes when npm run test:asan runs the suite: ASan is preloaded into
// every node process, so all of node's allocations go through it too.
// Behaviour is asserted the same; memory and volume are not comparable.
import type { Test } from 'tap';

/** Set by scripts/test-asan.sh. */
export const underSanitizers = process.env.TSMUXD_SANITIZED === '1';

/**
 * Asserts an RSS bound, except under ASan: its quarantine keeps up to 256 MiB
 * of freed memory resident on purpose, so RSS there says nothing about ours.
 * npm test asserts the same bound on the plain build.
 */
export function rssBounded(t: Test, ok: boolean, message: string): void {
  if (underSanitizers) t.comment(`not asserted under ASan (its quarantine holds freed memory): ${message}`);
  else t.ok(ok, message);
}

/** A load size for this run: the full one, or a fraction of it under ASan, where every allocation is several times slower. */
export function scaledForSanitizers(full: number, divisor: number): number {
  return underSanitizers ? Math.max(1, Math.floor(full / divisor)) : full;
}

/** A deadline for this run: three times as long under ASan, where a process takes seconds to start on a loaded machine. */
export function patience(ms: number): number {
  return underSanitizers ? ms * 3 : ms;
}
