// The installed `tsmuxd` bin: it runs from dist/ and reports its build.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { packageRoot } from '../src/native/addon.js';

const bin = join(packageRoot, 'dist', 'src', 'cli', 'main.js');

t.test('tsmuxd version names the bundled static libusb', async (t) => {
  const r = spawnSync(process.execPath, [bin, 'version'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^tsmuxd \d+\.\d+\.\d+ \(node v\d+.*libusb 1\.0\.26 static\)$/m);
});

t.test('an unknown command exits 2 with the usage', async (t) => {
  const r = spawnSync(process.execPath, [bin, 'no-such-command'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /unknown command 'no-such-command'/);
  t.match(r.stderr, /usage: tsmuxd/);
});
