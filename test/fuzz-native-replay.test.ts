// Every committed input of the native fuzzers runs once through its harness
// (npm run fuzz -- --replay), so a crash once found and fixed stays fixed.
// The harnesses need clang's libFuzzer; without clang++ the test is skipped.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { requireTool } from './helpers/system-tools.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const TARGETS = ['mux_frame', 'reassembler', 'cable_descriptor', 'pseudo_tcp', 'cdtunnel_stream', 'lwip_input'];

// libclang-rt-14-dev holds the libFuzzer runtime that clang++ -fsanitize=fuzzer links.
const noClang = requireTool('clang++', 'clang libclang-rt-14-dev');

t.test('every target has a committed corpus', async (t) => {
  for (const target of TARGETS) {
    const files = readdirSync(join(repoRoot, 'test/fuzz/corpus', target));
    t.ok(files.length > 0, `test/fuzz/corpus/${target} holds inputs`);
  }
});

t.test(
  'the committed corpora replay without a crash',
  { skip: noClang, timeout: 240_000 },
  async (t) => {
    // A cold build of the harnesses (and of lwIP for lwip_input, whose source
    // scripts/build-lwip.sh fetches on first use) takes most of this; later
    // runs relink nothing.
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
