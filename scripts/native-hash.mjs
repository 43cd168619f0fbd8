#!/usr/bin/env node
// Build tooling, excluded from the tap suite's coverage: its environment-
// dependent paths (git or directory walk, CLI) run in prebuild.sh and .ci/run.
/* c8 ignore start */
// Content hash of everything that goes into the native prebuilds (both
// addons, tsmuxd.napi.node and tsmuxd_testing.napi.node, are built from the
// same tree and the same source list, so one hash stands for both).
//
// One SHA-256 over the sorted list of: every file under native/ (lwIP's
// lwipopts.h and arch/cc.h in native/tunnel/lwip_port among them), plus
// binding-sources.json, CMakeLists.txt, binding.gyp, scripts/build-libusb.sh,
// scripts/build-lwip.sh and scripts/debian-source.sh (which pin the libusb
// and lwIP sources by SHA-256) and scripts/prebuild.sh. Each file contributes
// its repo-relative path (with '/' separators) and its bytes; file times and
// modes are ignored, since they mean nothing in a fresh clone.
//
// Inside a git work tree, files under native/ that git ignores are left out
// (a fresh clone would not have them); elsewhere (e.g. an npm tarball) the
// directory is walked.
//
// Each prebuild directory (prebuilds/linux-x64, prebuilds/linux-arm64) holds
// the hash of the sources it was built from: scripts/prebuild.sh --arch A
// writes that of A, so a tree whose native code changed after one was rebuilt
// and not the other fails the check of the other.
//
// CLI:
//   node scripts/native-hash.mjs           print the hash
//   node scripts/native-hash.mjs --list    print the hashed files, then the hash
//   node scripts/native-hash.mjs --write [--arch A]
//                                          write prebuilds/<platform>-<A>/native-sources.sha256
//                                          (default: this node's arch)
//   node scripts/native-hash.mjs --check [--arch A]
//                                          exit 1 unless the file of A (default:
//                                          of every arch in PREBUILD_ARCHES) matches
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: the parent of this script's directory. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Directories hashed recursively. */
export const NATIVE_DIRS = ['native'];
/** Single files hashed (all must exist). */
export const NATIVE_FILES = [
  'binding-sources.json',
  'CMakeLists.txt',
  'binding.gyp',
  'scripts/build-libusb.sh',
  'scripts/build-lwip.sh',
  'scripts/debian-source.sh',
  'scripts/prebuild.sh',
];

export const HASH_FILE_NAME = 'native-sources.sha256';

/** The architectures the package ships a Linux prebuild for (scripts/prebuild.sh --arch). */
export const PREBUILD_ARCHES = ['x64', 'arm64'];

/** prebuilds/<platform>-<arch>, as node-gyp-build looks it up. */
export function prebuildDir(root = repoRoot, platform = process.platform, arch = process.arch) {
  return join(root, 'prebuilds', `${platform}-${arch}`);
}

export function hashFilePath(root = repoRoot, arch = process.arch) {
  return join(prebuildDir(root, process.platform, arch), HASH_FILE_NAME);
}

const toPosix = (p) => p.split(sep).join('/');

function walk(root, dir, out) {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) walk(root, rel, out);
    else out.push(rel);
  }
}

/** Files git would put in a fresh clone (tracked, or untracked but not ignored). */
function gitFiles(root, dir) {
  let top;
  try {
    top = execFileSync('git', ['rev-parse', '--show-toplevel'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
  if (realpathSync(top) !== realpathSync(root)) return null;
  const out = execFileSync(
    'git',
    ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', `${dir}/`],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  // --cached also lists files deleted from the work tree; skip those.
  return [...new Set(out.split('\0').filter(Boolean))].filter((f) => existsSync(join(root, f)));
}

/** Sorted repo-relative paths of every file that feeds the native build. */
export function nativeSourceFiles(root = repoRoot) {
  const files = [];
  for (const dir of NATIVE_DIRS) {
    if (!existsSync(join(root, dir))) throw new Error(`native-hash: missing directory ${dir}/ in ${root}`);
    const listed = gitFiles(root, dir);
    if (listed) files.push(...listed);
    else walk(root, dir, files);
  }
  for (const file of NATIVE_FILES) {
    if (!existsSync(join(root, file))) throw new Error(`native-hash: missing file ${file} in ${root}`);
    files.push(file);
  }
  const unique = [...new Set(files.map(toPosix))];
  // Plain code-unit order, independent of locale.
  return unique.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Hex SHA-256 over the native sources of `root`. */
export function computeNativeHash(root = repoRoot) {
  const hash = createHash('sha256');
  for (const rel of nativeSourceFiles(root)) {
    const abs = join(root, rel);
    const st = lstatSync(abs);
    // A symlink contributes its target text; a regular file its bytes.
    const content = st.isSymbolicLink() ? Buffer.from(`symlink:${readlinkSync(abs)}`) : readFileSync(abs);
    const header = Buffer.from(`${rel}\0${content.length}\0`);
    hash.update(header);
    hash.update(content);
  }
  return hash.digest('hex');
}

/** The hash recorded beside the prebuild of `arch`, or null when there is none. */
export function readRecordedHash(root = repoRoot, arch = process.arch) {
  const file = hashFilePath(root, arch);
  if (!existsSync(file)) return null;
  return readFileSync(file, 'utf8').trim();
}

export function writeRecordedHash(root = repoRoot, arch = process.arch) {
  const hash = computeNativeHash(root);
  const file = hashFilePath(root, arch);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${hash}\n`);
  return { hash, file };
}

/** { ok, current, recorded } for the prebuild of `arch` in `root`. */
export function checkNativeHash(root = repoRoot, arch = process.arch, current = computeNativeHash(root)) {
  const recorded = readRecordedHash(root, arch);
  return { ok: recorded === current, current, recorded };
}

function main(argv) {
  const args = new Set();
  let arch;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--arch' || a.startsWith('--arch=')) {
      arch = a === '--arch' ? argv[++i] : a.slice('--arch='.length);
      if (!PREBUILD_ARCHES.includes(arch)) {
        console.error(`native-hash: --arch takes one of ${PREBUILD_ARCHES.join(', ')}, not ${arch}`);
        return 2;
      }
    } else if (['--write', '--check', '--list', '--help', '-h'].includes(a)) {
      args.add(a);
    } else {
      console.error(`native-hash: unknown argument ${a}`);
      return 2;
    }
  }
  if (args.has('--help') || args.has('-h')) {
    console.log('usage: node scripts/native-hash.mjs [--list] [--write | --check] [--arch x64|arm64]');
    return 0;
  }
  if (args.has('--write') && args.has('--check')) {
    console.error('native-hash: --write and --check are exclusive');
    return 2;
  }
  if (args.has('--list')) for (const f of nativeSourceFiles()) console.log(f);
  const rel = (a) => toPosix(relative(repoRoot, hashFilePath(repoRoot, a)));
  if (args.has('--write')) {
    const { hash } = writeRecordedHash(repoRoot, arch);
    console.log(`${hash}  -> ${rel(arch)}`);
    return 0;
  }
  if (args.has('--check')) {
    const current = computeNativeHash();
    let status = 0;
    for (const a of arch ? [arch] : PREBUILD_ARCHES) {
      const { ok, recorded } = checkNativeHash(repoRoot, a, current);
      if (ok) {
        console.log(`native sources match the ${a} prebuild (${current})`);
        continue;
      }
      console.error(`native sources changed since the last ${a} prebuild; run npm run build:prebuild -- --arch ${a}`);
      console.error(`  current:  ${current}`);
      console.error(`  recorded: ${recorded ?? `(none: ${rel(a)} is missing)`}`);
      status = 1;
    }
    return status;
  }
  console.log(computeNativeHash());
  return 0;
}

function invokedDirectly() {
  try {
    return !!process.argv[1] && realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  process.exitCode = main(process.argv.slice(2));
}
/* c8 ignore stop */
