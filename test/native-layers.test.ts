// native/ is in layers (docs/architecture.md, "Native layers"): every
// `#include "…"` under native/ goes down the table below or stays in its own
// folder. A new include that climbs (mux reaching into engine, engine into
// sim) fails here with the file and line.
import t from 'tap';
import { THIRD_PARTY_INCLUDE, folderCycles, folderGraph, formatGraph, nativeIncludes } from '../scripts/include-graph.mjs';

/** Folder -> the folders it may include, besides itself. */
const MAY_USE: Record<string, readonly string[]> = {
  core: [],
  usb: ['core'],
  mux: ['core'],
  // The userspace IPv6/TCP stack (lwIP), the CDTunnel link, TLS.
  tunnel: ['core', 'mux'],
  engine: ['core', 'usb', 'mux', 'tunnel'],
  sim: ['core', 'mux', 'engine'],
  // The testing addon's pieces (raw bulk device, lifetime probes).
  testing: ['core', 'usb', 'mux', 'engine'],
  // native/addon*.cc and addon.h: module init and the typed surface.
  addon: ['core', 'usb', 'mux', 'tunnel', 'engine', 'sim', 'testing'],
};

const includes = nativeIncludes();
const graph = folderGraph(includes);

t.test('the layer graph', async (t) => {
  t.comment(`native/ include graph (folder -> folders it includes):\n${formatGraph(graph)}`);
  t.ok(includes.length > 50, `${includes.length} quoted includes found`);
  t.same([...graph.keys()].filter((f) => !(f in MAY_USE)), [], 'every folder under native/ has a row in the table');
});

t.test('every quoted include resolves to a file', async (t) => {
  const unresolved = includes.filter((i) => i.to === null).map((i) => `${i.from}:${i.line} "${i.text}"`);
  t.same(unresolved, [], 'no include names a header that is not there');
});

t.test('no include climbs a layer', async (t) => {
  const bad = includes
    .filter((i) => i.toFolder !== null && i.toFolder !== i.fromFolder)
    .filter((i) => !(MAY_USE[i.fromFolder] ?? []).includes(i.toFolder!))
    .map((i) => `native/${i.from}:${i.line} includes "${i.text}" (${i.fromFolder} may use ${(MAY_USE[i.fromFolder] ?? []).join(', ') || 'nothing of ours'})`);
  t.same(bad, [], 'every include is allowed by the table');
});

t.test('the folder graph has no cycle', async (t) => {
  t.same(folderCycles(graph), []);
});

t.test('the checker sees a violation and a cycle', async (t) => {
  const fake = [
    { from: 'mux/x.h', line: 3, text: 'engine/engine.h', to: 'engine/engine.h', fromFolder: 'mux', toFolder: 'engine' },
    { from: 'engine/y.h', line: 4, text: 'mux/x.h', to: 'mux/x.h', fromFolder: 'engine', toFolder: 'mux' },
  ];
  const g = folderGraph(fake);
  t.same(g.get('mux'), ['engine']);
  t.same(folderCycles(g), [['engine', 'mux', 'engine']]);
  t.notOk((MAY_USE.mux ?? []).includes('engine'), 'mux -> engine is refused by the table');
});

t.test('third-party headers are not ours', async (t) => {
  // lwIP's and OpenSSL's headers, quoted or not, are on every target's path
  // (CMakeLists.txt, binding.gyp); they are neither layers nor unresolved.
  for (const text of ['lwip/tcp.h', 'lwip/priv/tcp_priv.h', 'netif/ethernet.h', 'openssl/ssl.h']) {
    t.ok(THIRD_PARTY_INCLUDE.test(text), `"${text}" is third-party`);
  }
  for (const text of ['mux/frame.h', 'tunnel/stack.h', 'lwipopts.h', 'arch/cc.h']) {
    t.notOk(THIRD_PARTY_INCLUDE.test(text), `"${text}" is not`);
  }
  t.same(includes.filter((i) => THIRD_PARTY_INCLUDE.test(i.text)), [], 'none is in the include list');
});
