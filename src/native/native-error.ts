// The addon's error classes and the package root, apart from addon.ts so that
// naming them loads nothing native: the client library exports NativeError,
// and the CLI recognises a missing addon, without the addon ever loading.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export class NativeError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = 'NativeError';
    this.code = code;
  }
}

/**
 * The addon could not be loaded (no build for this platform, or one that does
 * not load): the daemon and the sim cannot run here. The message says what to
 * do; `cause` is node-gyp-build's or dlopen's own error.
 */
export class NativeUnavailableError extends Error {
  readonly code = 'ERR_NATIVE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeUnavailableError';
  }
}

/** The package's root, from src/ (tests) or dist/src/ (installed). */
export const packageRoot = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

/**
 * Where scripts/install.mjs leaves its one line when it found no addon and
 * built none (npm shows an install script's output only with
 * --foreground-scripts, so the daemon repeats it when it fails to load).
 */
export const INSTALL_NOTE = join('build', 'tsmuxd-install-note.txt');

/** The commands that never load the addon, as the messages name them. */
export const CLIENT_COMMANDS = 'devices, info, pair, validate, unpair, forward, rsd, bench, top, capture, tunnel, wifi, remote';
