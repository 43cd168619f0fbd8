// The addon links no libssl or libcrypto: its OpenSSL calls are undefined
// symbols that resolve, when node loads it, against the OpenSSL node carries
// and exports (CMakeLists.txt, docs/architecture.md "Build"). Checked here on
// the node that runs the suite: it exports every OpenSSL symbol a committed
// prebuild imports (scripts/check-node-openssl.mjs, which prebuild.sh also
// runs), and an addon built that way loads and calls OpenSSL.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { TLS_ESSENTIALS, checkAddon, isOpenSslSymbol, nodeExports, opensslImports } from '../scripts/check-node-openssl.mjs';
import { prebuildDir, repoRoot } from '../scripts/native-hash.mjs';
import { REQUIRE_SYSTEM_TOOLS, missingToolLine, requireTool } from './helpers/system-tools.js';

const noNm = requireTool('nm', 'binutils');

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

t.test('which undefined names count as OpenSSL', async (t) => {
  for (const name of ['SSL_read_ex', 'TLS_method', 'BIO_s_mem', 'EVP_PKEY_free', 'PEM_read_bio_X509', 'X509_free', 'ERR_get_error', 'OPENSSL_init_ssl', 'CRYPTO_free', 'SHA256']) {
    t.ok(isOpenSslSymbol(name), `${name} is OpenSSL's`);
  }
  for (const name of ['napi_create_function', 'tcp_input', 'sys_now', 'memcpy', 'napi_get_boolean']) {
    t.notOk(isOpenSslSymbol(name), `${name} is not`);
  }
});

t.test('node exports the OpenSSL a tunnel\'s TLS needs', { skip: noNm }, async (t) => {
  const exported = nodeExports();
  t.comment(`node ${process.version} (${process.execPath}), OpenSSL ${process.versions.openssl}`);
  for (const name of TLS_ESSENTIALS) t.ok(exported.has(name), `node exports ${name}`);
});

t.test('every OpenSSL symbol a prebuild imports is exported by this node', { skip: noNm }, async (t) => {
  const dir = prebuildDir();
  const addons = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.node')).sort() : [];
  t.ok(addons.includes('tsmuxd.napi.node'), `${dir} holds tsmuxd.napi.node`);
  const exported = nodeExports();
  for (const name of addons) {
    const { imports, missing } = checkAddon(join(dir, name), exported);
    t.comment(imports.length === 0 ? `${name}: imports no OpenSSL symbol` : `${name}: imports ${imports.length} OpenSSL symbols`);
    t.same(missing, [], `${name}: node exports every OpenSSL symbol it imports`);
    t.notMatch(run('ldd', [join(dir, name)]).stdout, /libssl|libcrypto|lwip/, `${name}: ldd shows no libssl, libcrypto or lwip`);
  }
  // The same through the CLI, as prebuild.sh runs it.
  const r = run(process.execPath, ['scripts/check-node-openssl.mjs', ...addons.map((f) => join(dir, f))]);
  t.equal(r.status, 0, `check-node-openssl.mjs exits 0\n${r.stdout}${r.stderr}`);
  t.equal(r.stdout.trim().split('\n').length, addons.length, 'one line per addon');
});

// A probe addon built as ours is: OpenSSL's headers, no -lssl/-lcrypto.
const PROBE = String.raw`
#include <node_api.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

static napi_value probe(napi_env env, napi_callback_info info) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  BIO* bio = BIO_new(BIO_s_mem());
  char back[5] = {0};
  int ok = ctx != NULL && bio != NULL && BIO_write(bio, "tls!", 4) == 4 && BIO_read(bio, back, 4) == 4;
  BIO_free(bio);
  SSL_CTX_free(ctx);
  napi_value result;
  napi_get_boolean(env, ok && back[3] == '!', &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "probe", NAPI_AUTO_LENGTH, probe, NULL, &fn);
  napi_set_named_property(env, exports, "probe", fn);
  return exports;
}
`;

t.test('an addon with no libssl loads in node and calls OpenSSL', { skip: noNm || requireTool('gcc', 'gcc') }, async (t) => {
  const header = '/usr/include/openssl/ssl.h';
  if (!existsSync(header)) {
    const line = missingToolLine('openssl/ssl.h', 'libssl-dev');
    if (REQUIRE_SYSTEM_TOOLS) return t.fail(line);
    return t.pass('the probe addon', { skip: line });
  }
  const dir = mkdtempSync(join(tmpdir(), 'tsmuxd-openssl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const source = join(dir, 'probe.c');
  const addon = join(dir, 'probe.node');
  writeFileSync(source, PROBE);
  const cc = run('gcc', ['-shared', '-fPIC', '-O1', '-I', join(repoRoot, 'node_modules/node-api-headers/include'), '-o', addon, source]);
  t.equal(cc.status, 0, `gcc builds the probe without -lssl\n${cc.stderr}`);
  if (cc.status !== 0) return;

  const ldd = run('ldd', [addon]);
  t.notMatch(ldd.stdout, /libssl|libcrypto/, 'it depends on no libssl or libcrypto');
  const imports = opensslImports(addon);
  t.ok(['SSL_CTX_new', 'TLS_method', 'BIO_new', 'BIO_s_mem'].every((s) => imports.includes(s)), `it imports OpenSSL: ${imports.join(' ')}`);
  t.same(checkAddon(addon).missing, [], 'node exports all of them');
  t.same(checkAddon(addon, new Set()).missing, imports, 'against a node that exports nothing, all are missing');

  const load = run(process.execPath, ['-e', 'process.stdout.write(String(require(process.argv[1]).probe()))', addon]);
  t.equal(load.status, 0, `node loads it (${load.stderr.trim()})`);
  t.equal(load.stdout, 'true', 'SSL_CTX_new and a memory BIO work through node\'s OpenSSL');
});
