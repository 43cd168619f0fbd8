// The one place that decides what a test does when a program from a Debian
// package is missing (Debian's libimobiledevice clients, clang, util-linux).
// A newcomer's `npm test` skips such a test with one line naming the package;
// CI sets TSMUXD_REQUIRE_SYSTEM_TOOLS=1 (.ci/run installs them all), and there
// a missing program is a failure with the same line.
import t from 'tap';

import { findOnPath } from './daemon-process.js';

export const REQUIRE_SYSTEM_TOOLS = process.env.TSMUXD_REQUIRE_SYSTEM_TOOLS === '1';

/** The line a test is skipped (or, under TSMUXD_REQUIRE_SYSTEM_TOOLS=1, failed) with. */
export function missingToolLine(name: string, debianPackage: string): string {
  return `'${name}' not found: apt-get install ${debianPackage}`;
}

/**
 * false when `name` is on PATH; otherwise a tap skip reason, the line
 * "'NAME' not found: apt-get install PACKAGE". Use it as a test's
 * `{ skip: requireTool(...) }`, or for a check inside a test as
 * `t.pass(what, { skip: reason })`. With TSMUXD_REQUIRE_SYSTEM_TOOLS=1 a missing
 * program is also a failure with that line (on the file's root test, so it
 * counts however deep the caller is), and the dependent test does not run.
 */
export function requireTool(name: string, debianPackage: string): string | false {
  if (findOnPath(name)) return false;
  const line = missingToolLine(name, debianPackage);
  if (REQUIRE_SYSTEM_TOOLS) t.fail(line);
  return line;
}
