// Where corpora and findings live on disk. Paths are found from the repository
// root, so the same code works compiled (dist/test/fuzz/ts) and from source.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'tsmuxd') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the tsmuxd repository root');
    dir = up;
  }
}

export const corpusDir = (target: string, root = repoRoot()) => join(root, 'test', 'fuzz', 'corpus', `ts-${target}`);
export const crashDir = (target: string, root = repoRoot()) => join(root, 'build-fuzz', 'ts-crashes', target);

export const digest = (b: Buffer) => createHash('sha1').update(b).digest('hex').slice(0, 16);

/** The corpus files of a directory, by name; a missing directory is an empty corpus. */
export function loadCorpus(dir: string): Array<{ name: string; bytes: Buffer }> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && !n.endsWith('.md'))
    .sort()
    .map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}

/** A scratch copy of a committed corpus, so a run adds entries without touching the repository. */
export function temporaryCopy(target: string, from: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tsmuxd-fuzz-${target}-`));
  if (existsSync(from)) for (const n of readdirSync(from)) copyFileSync(join(from, n), join(dir, n));
  return dir;
}

export function saveEntry(dir: string, bytes: Buffer): string {
  const name = `new-${digest(bytes)}`;
  writeFileSync(join(dir, name), bytes);
  return name;
}

/** A finding's input and its report side by side: `<kind>-<hash>` and `<kind>-<hash>.txt`. */
export function saveFinding(dir: string, kind: string, input: Buffer, report: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${kind}-${digest(input)}`);
  writeFileSync(file, input);
  writeFileSync(`${file}.txt`, report);
  return file;
}
