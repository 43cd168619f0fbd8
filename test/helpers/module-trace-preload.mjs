// `node --import <this> ...` (through NODE_OPTIONS): every module the process
// loads, ES or CommonJS, is appended to $TSMUXD_MODULE_TRACE as one line (a
// file URL or a path), in load order, as it loads. test/daemon-startup.test.ts
// reads the file at the moments it cares about (the socket up, a phone listed).
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.TSMUXD_MODULE_TRACE;
if (out) {
  register('./module-trace-loader.mjs', import.meta.url, { data: { out } });
  // A CommonJS package's own require() calls never reach the ES hooks.
  const Module = createRequire(import.meta.url)('node:module');
  const load = Module._load;
  Module._load = function traced(request, parent, isMain) {
    const exports = load.apply(this, arguments);
    try {
      const file = Module._resolveFilename(request, parent, isMain);
      if (file.includes('/')) appendFileSync(out, `${file}\n`);
    } catch {
      // a builtin, or something node resolved its own way
    }
    return exports;
  };
}
