// The installed `tsmuxd` bin: it runs from dist/ and reports its build.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { nativeFile, packageRoot } from '../src/native/addon.js';

const bin = join(packageRoot, 'dist', 'src', 'cli', 'main.js');

t.test('tsmuxd version names the bundled static libusb, the addon file and its source hash', async (t) => {
  const r = spawnSync(process.execPath, [bin, 'version'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^tsmuxd \d+\.\d+\.\d+ \(node v\d+.*libusb 1\.0\.26 static\)$/m);
  // Loaded as the tests load it: the prebuild, or a developer's build/Release.
  t.match(r.stdout, new RegExp(`^addon: ${nativeFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), 'the file node-gyp-build chose');
  const beside = join(dirname(nativeFile), 'native-sources.sha256');
  if (existsSync(beside)) {
    t.match(r.stdout, new RegExp(`^native sources: sha256 ${readFileSync(beside, 'utf8').trim()} `, 'm'), 'the hash recorded beside the prebuild');
  } else {
    t.match(r.stdout, /^native sources: built here, no recorded hash$/m, 'an addon built here has no recorded hash');
  }
});

t.test('an unknown command exits 2 with the usage', async (t) => {
  const r = spawnSync(process.execPath, [bin, 'no-such-command'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /unknown command 'no-such-command'/);
  t.match(r.stderr, /usage: tsmuxd/);
});
