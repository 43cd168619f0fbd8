// The TypeScript layers (docs/architecture.md, "Folders"): every relative
// import under src/ is checked against what its folder may use, so that the
// tree keeps the shape the architecture note draws. The test prints the
// folder graph it found.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

import t from 'tap';

import { packageRoot } from '../src/native/addon.js';

/**
 * Folder -> the folders of ours it may import (besides itself). `util` (the
 * logger, sizes, text tables) may be used by every folder and uses none.
 * Where this differs from ../shared/docs/architecture.md, the reason is in
 * docs/architecture.md.
 */
const MAY_USE: Record<string, readonly string[]> = {
  util: [],
  protocol: [],
  native: [],
  pairing: ['protocol', 'lockdown', 'xpc', 'afc'],
  lockdown: ['protocol', 'pairing', 'xpc', 'afc'],
  xpc: ['protocol', 'pairing', 'lockdown', 'afc'],
  afc: ['protocol', 'pairing', 'lockdown', 'xpc'],
  client: ['protocol', 'pairing', 'lockdown', 'xpc', 'afc'],
  devices: ['native', 'protocol'],
  usb: ['native', 'protocol'],
  registry: ['native', 'protocol'],
  supervisor: ['native', 'protocol', 'registry'],
  preflight: ['native', 'protocol', 'pairing', 'lockdown', 'xpc', 'afc', 'client', 'devices', 'usb'],
  tunnel: ['native', 'protocol', 'pairing', 'lockdown', 'devices'],
  'tunnel-api': ['protocol', 'devices', 'tunnel'],
  wifi: ['protocol', 'pairing', 'lockdown', 'devices'],
  remote: ['native', 'protocol', 'devices'],
  server: ['native', 'protocol', 'pairing', 'lockdown', 'xpc', 'afc', 'client', 'devices', 'usb', 'preflight', 'tunnel', 'remote'],
  sim: ['native', 'protocol', 'pairing', 'lockdown', 'xpc', 'afc', 'registry'],
  daemon: ['native', 'protocol', 'pairing', 'lockdown', 'xpc', 'afc', 'client', 'devices', 'usb', 'preflight', 'tunnel', 'tunnel-api', 'wifi', 'remote', 'server', 'registry', 'supervisor', 'sim'],
  bench: ['protocol', 'pairing', 'lockdown', 'xpc', 'afc', 'client'],
  cli: ['*'],
  '(root)': ['*'],
};

/** Imports that erase at compile time and are allowed where a runtime import is not. */
const TYPE_ONLY_MAY_USE: Record<string, readonly string[]> = {
  // The stats the client library returns are the addon's snapshot records;
  // importing their types loads nothing.
  client: ['native'],
};

interface Edge {
  from: string;
  to: string;
  file: string;
  spec: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (path.endsWith('.ts')) out.push(path);
  }
  return out;
}

const src = join(packageRoot, 'src');
const folderOf = (path: string): string => {
  const parts = relative(src, path).split('/');
  return parts.length > 1 ? parts[0]! : '(root)';
};

function edges(): Edge[] {
  const found: Edge[] = [];
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, 'utf8');
    // Static imports and re-exports (`import … from`, `export … from`) and dynamic import().
    for (const m of text.matchAll(/^\s*(import|export)(\s+type)?\b[^;]*?\bfrom\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gms)) {
      const spec = m[3] ?? m[4]!;
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      const rel = relative(packageRoot, target);
      const to = rel.startsWith('src/') ? folderOf(target) : `../${rel.split('/')[0]}`;
      const from = folderOf(file);
      if (to !== from) found.push({ from, to, file: relative(packageRoot, file), spec, typeOnly: !!m[2] });
    }
  }
  return found;
}

const all = edges();

t.test('every src/ folder imports only what the architecture note allows', async (t) => {
  const graph = new Map<string, Set<string>>();
  for (const e of all) {
    if (!graph.has(e.from)) graph.set(e.from, new Set());
    graph.get(e.from)!.add(e.typeOnly ? `${e.to} (types)` : e.to);
  }
  t.comment('folder graph:\n' + [...graph].sort().map(([from, to]) => `  ${from} -> ${[...to].sort().join(', ')}`).join('\n'));
  const violations = all.filter((e) => {
    const allowed = MAY_USE[e.from];
    if (!allowed) return true;  // a new folder: add it to the table
    if (allowed.includes('*') && !e.to.startsWith('../')) return false;
    if (allowed.includes(e.to)) return false;
    if (e.to === 'util' && !e.to.startsWith('../')) return false;
    return !(e.typeOnly && TYPE_ONLY_MAY_USE[e.from]?.includes(e.to));
  });
  t.same(
    violations.map((v) => `${v.file}: '${v.spec}' (${v.from} -> ${v.to}${v.typeOnly ? ', types' : ''})`),
    [],
    'no import crosses the table (a new folder needs a row)',
  );
});

t.test('nothing in src/ imports bench/, test/ or lab/', async (t) => {
  const outside = all.filter((e) => e.to.startsWith('../'));
  t.same(outside.map((e) => `${e.file}: '${e.spec}'`), []);
});

t.test('the checker sees what it checks', async (t) => {
  // It must find the edges everyone knows are there, or it checks nothing.
  const has = (from: string, to: string) => all.some((e) => e.from === from && e.to === to);
  t.ok(has('server', 'protocol'), 'server -> protocol');
  t.ok(has('client', 'protocol'), 'client -> protocol');
  t.ok(has('daemon', 'server'), 'daemon -> server');
  t.ok(all.some((e) => e.typeOnly), 'and type-only imports');
  t.ok(all.length > 100, `${all.length} cross-folder imports in all`);
});
