// Types for scripts/check-node-openssl.mjs (imported by test/native-openssl.test.ts).
export declare const OPENSSL_PREFIXES: readonly string[];
export declare const OPENSSL_NAMES: readonly string[];
export declare const TLS_ESSENTIALS: readonly string[];
export declare function isOpenSslSymbol(name: string): boolean;
export declare function dynamicSymbols(file: string, which: 'undefined' | 'defined'): Set<string>;
export declare function opensslImports(addon: string): string[];
export declare function nodeExports(nodePath?: string): Set<string>;
export declare function checkAddon(addon: string, exported?: Set<string>): { imports: string[]; missing: string[] };
