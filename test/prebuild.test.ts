// The committed N-API prebuilds (linux-x64 and linux-arm64): up to date with
// native/, self-contained (libusb and lwIP linked statically), exporting only
// the N-API entry points, and this machine's loadable by node. The arm64 ones
// load in an arm64 node under emulation in npm run test:arm64 (test/arm64).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { computeNativeHash, hashFilePath, PREBUILD_ARCHES, prebuildDir, repoRoot } from '../scripts/native-hash.mjs';

const PREBUILD = join(prebuildDir(), 'tsmuxd.napi.node');
// Tests, benches and the lab only; built, stripped and checked with it.
const TESTING_PREBUILD = join(prebuildDir(), 'tsmuxd_testing.napi.node');
/** Both addons of every shipped architecture, this machine's among them. */
const ALL_PREBUILDS = PREBUILD_ARCHES.flatMap((arch) =>
  ['tsmuxd.napi.node', 'tsmuxd_testing.napi.node'].map((name) => join(prebuildDir(repoRoot, 'linux', arch), name)),
);
/** What a prebuild may need from the system (readelf -d): the C and C++ runtimes and the dynamic loader. */
const ALLOWED_NEEDED = /^(libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-(x86-64\.so\.2|aarch64\.so\.1))$/;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { cwd: repoRoot, env, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

t.test('every prebuild exists', async (t) => {
  for (const file of ALL_PREBUILDS) t.ok(existsSync(file), `${file} exists (run npm run build:prebuild -- --arch ARCH)`);
});

t.test("each architecture's native-sources.sha256 matches the native sources", async (t) => {
  const current = computeNativeHash();
  for (const arch of PREBUILD_ARCHES) {
    const file = hashFilePath(repoRoot, arch);
    t.ok(existsSync(file), `${file} exists`);
    if (!existsSync(file)) continue;
    const recorded = readFileSync(file, 'utf8').trim();
    t.match(recorded, /^[0-9a-f]{64}$/, `${arch}: recorded hash is a hex SHA-256`);
    t.equal(current, recorded, `${arch}: native sources changed since the last prebuild; run npm run build:prebuild -- --arch ${arch}`);
  }
});

t.test('every prebuild needs only libc, libm, libstdc++, libgcc_s and the loader', async (t) => {
  for (const file of ALL_PREBUILDS) {
    if (!existsSync(file)) {
      t.fail(`no ${file}`);
      continue;
    }
    const r = run('readelf', ['-d', file]);
    t.equal(r.status, 0, `readelf exits 0 (${r.stderr.trim()})`);
    const needed = [...r.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    t.ok(needed.includes('libc.so.6'), `${file} needs libc (${needed.join(' ')})`);
    t.same(needed.filter((n) => !ALLOWED_NEEDED.test(n)), [], `${file}: nothing else (no libusb, libudev, libssl or lwIP)`);
  }
});

t.test('prebuild does not link libusb or libudev dynamically', async (t) => {
  if (!existsSync(PREBUILD)) return t.fail('no prebuild');
  const r = run('ldd', [PREBUILD]);
  t.equal(r.status, 0, `ldd exits 0 (${r.stderr.trim()})`);
  t.match(r.stdout, /libc\.so\.6/, 'ldd lists the dependencies of a dynamic object');
  t.notMatch(r.stdout, /libusb/, 'no libusb dependency');
  t.notMatch(r.stdout, /libudev/, 'no libudev dependency');
  t.notMatch(r.stdout, /not found/, 'every dependency resolves');
});

t.test('prebuild loads in a fresh node process and exports an object', async (t) => {
  if (!existsSync(PREBUILD)) return t.fail('no prebuild');
  // Loaded by path, so a build/Release from a developer build cannot shadow it.
  const code = [
    "import { createRequire } from 'node:module';",
    'const m = createRequire(import.meta.url)(process.argv[1]);',
    'process.stdout.write(JSON.stringify({ type: m === null ? "null" : typeof m, keys: Object.keys(m ?? {}) }));',
  ].join('\n');
  const r = run(process.execPath, ['--input-type=module', '-e', code, PREBUILD]);
  t.equal(r.status, 0, `child exits 0 (${r.stderr.trim()})`);
  const out = JSON.parse(r.stdout) as { type: string; keys: string[] };
  t.equal(out.type, 'object', 'module exports an object');
  t.ok(out.keys.length > 0, `module exports something (${out.keys.join(', ')})`);
});

t.test('node-gyp-build picks the prebuild when there is no build/', async (t) => {
  const code = [
    "import { createRequire } from 'node:module';",
    "const ngb = createRequire(process.argv[1] + '/package.json')('node-gyp-build');",
    'process.stdout.write(ngb.path(process.argv[1]));',
  ].join('\n');
  // PREBUILDS_ONLY makes node-gyp-build skip build/Release and build/Debug.
  const env: NodeJS.ProcessEnv = { ...process.env, PREBUILDS_ONLY: '1' };
  delete env.TSMUXD_PREBUILD;
  const r = run(process.execPath, ['--input-type=module', '-e', code, repoRoot], env);
  t.equal(r.status, 0, `child exits 0 (${r.stderr.trim()})`);
  t.equal(r.stdout, PREBUILD);
});

t.test('the testing addon is prebuilt beside it, self-contained, and loads', async (t) => {
  t.ok(existsSync(TESTING_PREBUILD), `${TESTING_PREBUILD} exists (run npm run build:prebuild)`);
  if (!existsSync(TESTING_PREBUILD)) return;
  const ldd = run('ldd', [TESTING_PREBUILD]);
  t.equal(ldd.status, 0, `ldd exits 0 (${ldd.stderr.trim()})`);
  t.notMatch(ldd.stdout, /libusb|libudev/, 'no libusb or libudev dependency');
  t.notMatch(ldd.stdout, /not found/, 'every dependency resolves');
  const code = [
    "import { createRequire } from 'node:module';",
    'const m = createRequire(import.meta.url)(process.argv[1]);',
    'process.stdout.write(JSON.stringify(Object.keys(m)));',
  ].join('\n');
  const r = run(process.execPath, ['--input-type=module', '-e', code, TESTING_PREBUILD]);
  t.equal(r.status, 0, `child exits 0 (${r.stderr.trim()})`);
  t.same(JSON.parse(r.stdout), ['setErrorClass', 'wire', 'RawBulkDevice', 'lifetimeProbes']);
});

t.test('every prebuild exports only the N-API entry points; the daemon has no test-only code', async (t) => {
  for (const file of ALL_PREBUILDS) {
    if (!existsSync(file)) {
      t.fail(`no ${file}`);
      continue;
    }
    const r = run('nm', ['-D', '--defined-only', file]);
    t.equal(r.status, 0, `nm exits 0 (${r.stderr.trim()})`);
    const names = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).pop()).sort();
    t.same(names, ['napi_register_module_v1', 'node_api_module_get_api_version_v1'], file);
  }
  if (!existsSync(PREBUILD)) return;
  const code = [
    "import { createRequire } from 'node:module';",
    'const m = createRequire(import.meta.url)(process.argv[1]);',
    'process.stdout.write(JSON.stringify(Object.keys(m)));',
  ].join('\n');
  const r = run(process.execPath, ['--input-type=module', '-e', code, PREBUILD]);
  const keys = JSON.parse(r.stdout) as string[];
  t.notOk(keys.includes('wire'), 'the daemon addon exports no wire tools');
  t.notOk(keys.includes('RawBulkDevice'), 'the daemon addon has no raw bulk device');
});

t.test('package.json leaves the testing addon out of the package', async (t) => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { files: string[] };
  t.ok(pkg.files.includes('!prebuilds/*/tsmuxd_testing.napi.node'), 'files excludes the testing prebuild');
});
