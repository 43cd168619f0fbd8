#!/usr/bin/env node
// Tooling, excluded from the tap suite's coverage (test/native-layers.test.ts
// runs the same functions).
/* c8 ignore start */
// The folder-level graph of native/'s `#include "…"` lines.
//
// A file's folder is its first directory under native/ (native/mux/frame.cc
// is in `mux`); the files directly in native/ (addon*.cc, addon.h) are the
// folder `addon`. Quoted includes resolve against the include directories
// every build passes (native/, and native/tunnel/lwip_port for lwIP's
// lwipopts.h and arch/cc.h) and then against the including file's own
// directory. Angle-bracket includes are system or third-party headers and are
// not ours; so are quoted ones under a third-party include root (lwIP's
// lwip/, netif/, compat/ from its src/include, and openssl/), which the
// builds add to every target's path.
//
// CLI:
//   node scripts/include-graph.mjs           folder -> folders it includes, then any cycle
//   node scripts/include-graph.mjs --files   also every cross-folder include, file by file
// Exits 1 when the folder graph has a cycle.
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const NATIVE_DIR = 'native';
const SOURCE = /\.(cc|cpp|c|h|hpp)$/;
const INCLUDE = /^\s*#\s*include\s*"([^"]+)"/;
/** Include directories of ours, relative to the repo (CMakeLists.txt, binding.gyp). */
export const NATIVE_INCLUDE_DIRS = ['native', 'native/tunnel/lwip_port'];
/** A quoted include of a third-party header: not ours, not checked. */
export const THIRD_PARTY_INCLUDE = /^(lwip|netif|compat|openssl)\//;

const toPosix = (p) => p.split(sep).join('/');

function walk(root, dir, out) {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) walk(root, rel, out);
    else if (SOURCE.test(entry.name)) out.push(rel);
  }
}

/** `mux` for native/mux/frame.h; `addon` for native/addon.cc. */
export function folderOf(nativeRelative) {
  const parts = nativeRelative.split('/');
  return parts.length > 1 ? parts[0] : 'addon';
}

/**
 * Every quoted include under native/ but the third-party ones:
 * { from, line, text, to, fromFolder, toFolder }.
 * `to` is native-relative, or null when the header is not under native/
 * (then toFolder is null too).
 */
export function nativeIncludes(root = repoRoot) {
  const files = [];
  walk(root, NATIVE_DIR, files);
  files.sort();
  const out = [];
  for (const file of files) {
    const from = toPosix(relative(NATIVE_DIR, file));
    const lines = readFileSync(join(root, file), 'utf8').split('\n');
    lines.forEach((text, i) => {
      const m = INCLUDE.exec(text);
      if (!m || THIRD_PARTY_INCLUDE.test(m[1])) return;
      const candidates = [...NATIVE_INCLUDE_DIRS.map((d) => join(root, d, m[1])), join(root, dirname(file), m[1])];
      const hit = candidates.find((c) => existsSync(c));
      const to = hit ? toPosix(relative(join(root, NATIVE_DIR), hit)) : null;
      out.push({
        from,
        line: i + 1,
        text: m[1],
        to,
        fromFolder: folderOf(from),
        toFolder: to === null || to.startsWith('..') ? null : folderOf(to),
      });
    });
  }
  return out;
}

/** Map folder -> sorted folders it includes (itself left out). Every folder appears as a key. */
export function folderGraph(includes) {
  const graph = new Map();
  const add = (f) => graph.has(f) || graph.set(f, new Set());
  for (const inc of includes) {
    add(inc.fromFolder);
    if (inc.toFolder === null) continue;
    add(inc.toFolder);
    if (inc.toFolder !== inc.fromFolder) graph.get(inc.fromFolder).add(inc.toFolder);
  }
  const sorted = new Map();
  for (const key of [...graph.keys()].sort()) sorted.set(key, [...graph.get(key)].sort());
  return sorted;
}

/** The cycles of the folder graph, each as [a, b, ..., a]; [] when it is a DAG. */
export function folderCycles(graph) {
  const cycles = [];
  const seen = new Set();
  const key = (c) => {
    const ring = c.slice(0, -1);
    const start = ring.indexOf([...ring].sort()[0]);
    return [...ring.slice(start), ...ring.slice(0, start)].join('>');
  };
  const visit = (node, path) => {
    for (const next of graph.get(node) ?? []) {
      const at = path.indexOf(next);
      if (at >= 0) {
        const cycle = [...path.slice(at), next];
        if (!seen.has(key(cycle))) {
          seen.add(key(cycle));
          cycles.push(cycle);
        }
      } else visit(next, [...path, next]);
    }
  };
  for (const node of graph.keys()) visit(node, [node]);
  return cycles;
}

export function formatGraph(graph) {
  const width = Math.max(...[...graph.keys()].map((k) => k.length));
  return [...graph].map(([from, to]) => `${from.padEnd(width)} -> ${to.length ? to.join(', ') : '(nothing of ours)'}`).join('\n');
}

function main(argv) {
  const includes = nativeIncludes();
  const graph = folderGraph(includes);
  console.log(`native/ include graph (folder -> folders it includes):\n${formatGraph(graph)}`);
  if (argv.includes('--files')) {
    console.log('\ncross-folder includes:');
    for (const inc of includes) {
      if (inc.toFolder !== null && inc.toFolder !== inc.fromFolder) console.log(`  ${inc.from}:${inc.line} -> ${inc.text}`);
    }
  }
  const unresolved = includes.filter((inc) => inc.to === null);
  for (const inc of unresolved) console.log(`unresolved: ${inc.from}:${inc.line} "${inc.text}"`);
  const cycles = folderCycles(graph);
  if (cycles.length === 0) {
    console.log('\ncycles: none');
    return 0;
  }
  console.log(`\ncycles (${cycles.length}):`);
  for (const c of cycles) console.log(`  ${c.join(' -> ')}`);
  return 1;
}

function invokedDirectly() {
  try {
    return !!process.argv[1] && realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) process.exitCode = main(process.argv.slice(2));
/* c8 ignore stop */
