// Every committed input of the native fuzzers runs once through its harness
// (npm run fuzz -- --replay), so a crash once found and fixed stays fixed.
// The harnesses need clang's libFuzzer; without clang++ the test is skipped.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const TARGETS = ['mux_frame', 'reassembler', 'cable_descriptor', 'pseudo_tcp'];

const clang = spawnSync('clang++', ['--version'], { encoding: 'utf8' });
const haveClang = !clang.error && clang.status === 0;

t.test('every target has a committed corpus', async (t) => {
  for (const target of TARGETS) {
    const files = readdirSync(join(repoRoot, 'test/fuzz/corpus', target));
    t.ok(files.length > 0, `test/fuzz/corpus/${target} holds inputs`);
  }
});

t.test(
  'the committed corpora replay without a crash',
  { skip: haveClang ? false : 'clang++ is not installed (apt-get install clang libclang-rt-14-dev)', timeout: 240_000 },
  async (t) => {
    // A cold build of the harnesses takes most of this; later runs relink nothing.
    const r = spawnSync('bash', ['scripts/fuzz.sh', '--replay', '--only', 'native', '--jobs', '2'], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 230_000,
    });
    if (r.error) throw r.error;
    t.equal(r.status, 0, `fuzz.sh --replay exits 0\n${r.stdout}\n${r.stderr}`);
    for (const target of TARGETS) {
      t.match(r.stdout, new RegExp(`^${target}\\s+ok: \\d+ inputs$`, 'm'), `${target} replayed its corpus`);
    }
  },
);
