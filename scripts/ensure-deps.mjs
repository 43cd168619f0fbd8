#!/usr/bin/env node
// Run by `npm test` and `npm start` (pretest/prestart) before tsc: on a fresh
// clone it installs the npm dependencies, so that those two commands are all a
// newcomer types. `npm ci` when package-lock.json is there, else `npm install`.
// The committed prebuild means no compiler and no system package is needed.
// With node_modules present it does nothing (it never reinstalls over one).
// Plain node, node: builtins only: it runs before any dependency exists.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => process.stderr.write(`[ensure-deps] ${line}\n`);

if (existsSync(join(root, 'node_modules'))) {
  // Present but without the tools the scripts run next: say so rather than
  // reinstall over someone's tree (e.g. an `npm ci --omit=dev`).
  const missing = ['typescript', 'tap'].filter((name) => !existsSync(join(root, 'node_modules', name, 'package.json')));
  if (missing.length > 0) {
    say(`node_modules has no ${missing.join(' or ')}: run npm install (or npm ci) to complete it`);
    process.exit(1);
  }
  process.exit(0);
}

const command = existsSync(join(root, 'package-lock.json')) ? 'ci' : 'install';
// Under npm (the pre-scripts), npm_execpath is the npm that is running us.
const npmCli = process.env.npm_execpath;
const [file, args] = npmCli && /\.[cm]?js$/.test(npmCli)
  ? [process.execPath, [npmCli, command]]
  : ['npm', [command]];
say(`no node_modules: npm ${command} (uses the committed prebuild; no compiler needed)`);
const started = Date.now();
const r = spawnSync(file, args, { cwd: root, stdio: 'inherit' });
if (r.error) {
  say(`could not run npm ${command}: ${r.error.message}`);
  process.exit(1);
}
if (r.status !== 0) {
  say(`npm ${command} failed (${r.status ?? r.signal})`);
  process.exit(r.status || 1);
}
say(`npm ${command} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
