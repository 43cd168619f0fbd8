#!/usr/bin/env node
// Build tooling, excluded from the tap suite's coverage (test/native-openssl.test.ts
// runs the same functions; prebuild.sh runs the CLI).
/* c8 ignore start */
// The addon links no libssl or libcrypto: its OpenSSL calls stay undefined
// symbols that the dynamic loader resolves against the OpenSSL that node
// itself carries and exports. This checks that the node running this script
// exports every OpenSSL symbol an addon imports, so that a missing one is a
// build-time failure, not an "undefined symbol" when a tunnel first calls it.
//
// CLI:
//   node scripts/check-node-openssl.mjs ADDON.node [...]
// Exits 1 when node lacks a symbol an addon imports (each is listed), 2 on a
// usage error. An addon that imports no OpenSSL symbol passes, and says so.
// Needs nm (binutils).
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * OpenSSL's (libssl's and libcrypto's) public name prefixes. A name with one
 * of them that an addon leaves undefined is OpenSSL's to provide.
 */
export const OPENSSL_PREFIXES = [
  'SSL_', 'TLS_', 'DTLS_', 'BIO_', 'EVP_', 'PEM_', 'X509_', 'X509V3_', 'ERR_', 'OPENSSL_', 'CRYPTO_',
  'OSSL_', 'RAND_', 'ASN1_', 'BN_', 'EC_', 'ECDSA_', 'ECDH_', 'RSA_', 'DH_', 'DSA_', 'HMAC_', 'OBJ_',
  'PKCS5_', 'PKCS7_', 'PKCS8_', 'PKCS12_', 'ENGINE_', 'CONF_', 'NCONF_', 'OCSP_', 'CMS_', 'UI_',
  'SHA1_', 'SHA224_', 'SHA256_', 'SHA384_', 'SHA512_', 'MD5_', 'd2i_', 'i2d_', 'sk_', 'OPENSSL_sk_',
];
/** Whole names without a prefix of their own (one-shot digests and HMAC). */
export const OPENSSL_NAMES = ['SHA1', 'SHA224', 'SHA256', 'SHA384', 'SHA512', 'MD5', 'HMAC'];

/** What a tunnel's TLS needs from node; test/native-openssl.test.ts checks them. */
export const TLS_ESSENTIALS = [
  'SSL_read_ex', 'SSL_write_ex', 'SSL_CTX_new', 'BIO_new', 'BIO_s_mem', 'PEM_read_bio_X509', 'PEM_read_bio_PrivateKey',
];

export function isOpenSslSymbol(name) {
  return OPENSSL_NAMES.includes(name) || OPENSSL_PREFIXES.some((p) => name.startsWith(p));
}

/** The dynamic symbols `nm -D` lists for `file`, undefined or defined, without their version (`@OPENSSL_3.0.0`). */
export function dynamicSymbols(file, which) {
  const out = execFileSync('nm', ['-D', which === 'undefined' ? '--undefined-only' : '--defined-only', file], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const names = new Set();
  for (const line of out.split('\n')) {
    const name = line.trim().split(/\s+/).pop();
    if (name) names.add(name.replace(/@.*$/, ''));
  }
  return names;
}

/** The OpenSSL symbols `addon` imports, sorted. */
export function opensslImports(addon) {
  return [...dynamicSymbols(addon, 'undefined')].filter(isOpenSslSymbol).sort();
}

/** Every symbol the node binary exports (default: the one running this). */
export function nodeExports(nodePath = process.execPath) {
  return dynamicSymbols(nodePath, 'defined');
}

/** { imports, missing } for one addon against node's exports. */
export function checkAddon(addon, exported = nodeExports()) {
  const imports = opensslImports(addon);
  return { imports, missing: imports.filter((name) => !exported.has(name)) };
}

function main(argv) {
  if (argv.length === 0 || argv.some((a) => a === '-h' || a === '--help')) {
    console.error('usage: node scripts/check-node-openssl.mjs ADDON.node [...]');
    return argv.length === 0 ? 2 : 0;
  }
  const exported = nodeExports();
  const node = `node ${process.version} (${process.execPath}, OpenSSL ${process.versions.openssl})`;
  let status = 0;
  for (const addon of argv) {
    const { imports, missing } = checkAddon(addon, exported);
    if (imports.length === 0) {
      console.log(`${addon}: imports no OpenSSL symbol (nothing to check against ${node})`);
    } else if (missing.length === 0) {
      console.log(`${addon}: all ${imports.length} OpenSSL symbols it imports are exported by ${node}`);
    } else {
      console.error(`${addon}: ${node} does not export ${missing.length} of the ${imports.length} OpenSSL symbols it imports: ${missing.join(' ')}`);
      status = 1;
    }
  }
  return status;
}

// Run as a script (not imported by the test): the module's own file is argv[1].
if (process.argv[1] && existsSync(process.argv[1]) && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
/* c8 ignore stop */
