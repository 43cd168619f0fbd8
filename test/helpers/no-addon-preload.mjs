// `node --import <this> ...`: a process in which native code cannot load.
// process.dlopen (every .node file: ours, usb's) and, through the loader in
// no-addon-loader.mjs, any import of src/native/addon.js or testing.js throw,
// and each attempt is appended to $TSMUXD_NO_ADDON_MARKER first, so a test
// sees it even where the program catches the error. test/no-addon.test.ts
// runs every client command this way.
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';

const marker = process.env.TSMUXD_NO_ADDON_MARKER;
const record = (line) => {
  if (marker) appendFileSync(marker, `${line} (pid ${process.pid}: ${process.argv.slice(2).join(' ')})\n`);
};

register('./no-addon-loader.mjs', import.meta.url, { data: { marker } });

process.dlopen = (_module, filename) => {
  record(`dlopen ${filename}`);
  throw new Error(`no-addon: native code may not load here: ${filename}`);
};
