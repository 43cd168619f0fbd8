#!/usr/bin/env node
// npm's install hook. The native addon is for the daemon and `tsmuxd sim`
// only (Linux: epoll, FunctionFS, SOCK_SEQPACKET); the client commands and
// the client library are plain TypeScript. So a missing addon never fails
// the install:
//   - a prebuild that loads (prebuilds/linux-x64 or linux-arm64, or an earlier build): done;
//   - no Linux: one line saying so, no compiler run;
//   - Linux without one: build it with node-gyp as node-gyp-build did, unless
//     the tools are plainly missing; a failure says what is missing, exit 0.
// `npm install --build-from-source` (npm_config_build_from_source) or
// TSMUXD_BUILD_FROM_SOURCE=1 always builds, and then a failed build fails
// the install. npm shows an install script's output only with
// --foreground-scripts, so the line also goes to build/tsmuxd-install-note.txt,
// which the daemon quotes when the addon does not load.
// Plain node, node: builtins and node-gyp-build (a dependency, installed first).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const NOTE = join(root, 'build', 'tsmuxd-install-note.txt');
/** Kept in step with CLIENT_COMMANDS in src/native/native-error.ts. */
const CLIENT_COMMANDS = 'devices, info, pair, validate, unpair, forward, rsd, bench, top, capture, tunnel, wifi, remote';
/** Loading a prebuild takes milliseconds; one that hangs must not hang the install. */
const LOAD_CHECK_TIMEOUT_MS = 20_000;
const where = `${process.platform}-${process.arch}`;

const say = (line) => process.stderr.write(`tsmuxd: ${line}\n`);
const truthy = (v) => ['1', 'true', 'tsmuxd'].includes(String(v ?? '').toLowerCase());
const fromSource = truthy(process.env.npm_config_build_from_source) || truthy(process.env.TSMUXD_BUILD_FROM_SOURCE);

function leaveNote(line) {
  try {
    mkdirSync(dirname(NOTE), { recursive: true });
    writeFileSync(NOTE, `${line}\n`);
  } catch {
    // a read-only install tree: the line printed is all there is
  }
}

/** Ends the install successfully without an addon, saying so once. */
function withoutAddon(line) {
  say(line);
  leaveNote(line);
  process.exit(0);
}

/** node-gyp-build's choice of addon here, if it loads in a fresh node; else why not. */
function usableAddon() {
  let path;
  try {
    path = createRequire(import.meta.url)('node-gyp-build').path(root);
  } catch (err) {
    return { why: String(err.message).split('\n')[0] };
  }
  const r = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', path], { encoding: 'utf8', timeout: LOAD_CHECK_TIMEOUT_MS });
  if (r.status === 0) return { path };
  const error = (r.stderr || '').split('\n').find((l) => /Error/.test(l)) ?? `exit ${r.status ?? r.signal}`;
  return { why: `${path} does not load: ${error.trim()}` };
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

const anyOnPath = (names) => names.some(onPath);
const pkgConfig = (module) => spawnSync('pkg-config', ['--exists', module]).status === 0;

/** How npm's own node-gyp is run (npm hands its path to scripts), else one on PATH. */
function nodeGyp() {
  const bundled = process.env.npm_config_node_gyp;
  if (bundled && existsSync(bundled)) return /\.[cm]?js$/.test(bundled) ? [process.execPath, bundled] : [bundled];
  try {
    return [process.execPath, createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    return onPath('node-gyp') ? ['node-gyp'] : undefined;
  }
}

/**
 * What binding.gyp needs and this machine lacks, as apt would name it.
 * `tools`: without these node-gyp cannot even start compiling; `libraries`:
 * headers that are looked for where Debian puts them, so they may be
 * elsewhere and a build is still tried.
 */
function missing() {
  const tools = [];
  if (!process.env.CXX && !anyOnPath(['c++', 'g++', 'clang++'])) tools.push('a C++ compiler (g++ or clang++)');
  if (!process.env.CC && !anyOnPath(['cc', 'gcc', 'clang'])) tools.push('a C compiler (gcc or clang)');
  if (!anyOnPath(['make'])) tools.push('make');
  if (!process.env.npm_config_python && !process.env.PYTHON && !anyOnPath(['python3'])) tools.push('python3');
  if (!anyOnPath(['bash'])) tools.push('bash');
  if (!nodeGyp()) tools.push('node-gyp');
  const libraries = [];
  if (!anyOnPath(['pkg-config'])) tools.push('pkg-config');
  else if (!pkgConfig('libusb-1.0')) libraries.push('libusb-1.0 headers (libusb-1.0-0-dev)');
  if (!existsSync('/usr/include/openssl/ssl.h') && !(anyOnPath(['pkg-config']) && pkgConfig('openssl'))) {
    libraries.push('OpenSSL headers (libssl-dev)');
  }
  return { tools, libraries };
}

const unavailable = `the daemon and 'tsmuxd sim' are unavailable; the client commands (${CLIENT_COMMANDS}) work`;

if (!fromSource) {
  const addon = usableAddon();
  if (addon.path) {
    rmSync(NOTE, { force: true });
    process.exit(0);
  }
  if (process.platform !== 'linux') {
    withoutAddon(`no native addon for ${where}: the daemon and 'tsmuxd sim' need Linux; the client commands (${CLIENT_COMMANDS}) and the client library work here.`);
  }
  const { tools, libraries } = missing();
  if (tools.length > 0) {
    withoutAddon(
      `no prebuilt addon for ${where} (${addon.why}) and none can be built here (missing: ${[...tools, ...libraries].join(', ')}): ` +
        `${unavailable}; to build it later: npm rebuild tsmuxd --build-from-source.`,
    );
  }
  say(`no prebuilt addon for ${where} (${addon.why}): building it with node-gyp`);
}

const gyp = nodeGyp();
const started = Date.now();
const r = gyp
  ? spawnSync(gyp[0], [...gyp.slice(1), 'rebuild'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' })
  : { status: null, error: new Error('node-gyp not found') };
if (r.status === 0) {
  rmSync(NOTE, { force: true });
  say(`built the native addon in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  process.exit(0);
}
const { tools, libraries } = missing();
const lacking = [...tools, ...libraries];
const failed = `building the native addon failed (${r.error ? r.error.message : `node-gyp exit ${r.status ?? r.signal}`}${lacking.length ? `; missing: ${lacking.join(', ')}` : '; see its output above'})`;
if (fromSource) {
  // node-gyp's clean took any earlier note with build/: the daemon still needs one.
  leaveNote(`${failed}.`);
  say(`${failed}. --build-from-source was asked for, so the install fails.`);
  process.exit(r.status || 1);
}
withoutAddon(`${failed}: ${unavailable}; to retry: npm rebuild tsmuxd --build-from-source.`);
