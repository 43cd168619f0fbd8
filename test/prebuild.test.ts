// The committed N-API prebuild: up to date with native/, self-contained
// (libusb linked statically), and loadable by node.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { computeNativeHash, hashFilePath, prebuildDir, repoRoot } from '../scripts/native-hash.mjs';

const PREBUILD = join(prebuildDir(), 'tsmuxd.napi.node');
// Tests, benches and the lab only; built, stripped and checked with it.
const TESTING_PREBUILD = join(prebuildDir(), 'tsmuxd_testing.napi.node');

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { cwd: repoRoot, env, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

t.test('prebuild exists', async (t) => {
  t.ok(existsSync(PREBUILD), `${PREBUILD} exists (run npm run build:prebuild)`);
});

t.test('native-sources.sha256 matches the native sources', async (t) => {
  const file = hashFilePath();
  t.ok(existsSync(file), `${file} exists`);
  if (!existsSync(file)) return;
  const recorded = readFileSync(file, 'utf8').trim();
  t.match(recorded, /^[0-9a-f]{64}$/, 'recorded hash is a hex SHA-256');
  t.equal(
    computeNativeHash(),
    recorded,
    'native sources changed since the last prebuild; run npm run build:prebuild',
  );
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

t.test('both prebuilds export only the N-API entry points; the daemon has no test-only code', async (t) => {
  for (const file of [PREBUILD, TESTING_PREBUILD]) {
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
