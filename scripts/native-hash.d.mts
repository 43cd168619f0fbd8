// Types for scripts/native-hash.mjs (imported by test/prebuild.test.ts).
export declare const repoRoot: string;
export declare const NATIVE_DIRS: readonly string[];
export declare const NATIVE_FILES: readonly string[];
export declare const HASH_FILE_NAME: string;
export declare const PREBUILD_ARCHES: readonly string[];
export declare function prebuildDir(root?: string, platform?: string, arch?: string): string;
export declare function hashFilePath(root?: string, arch?: string): string;
export declare function nativeSourceFiles(root?: string): string[];
export declare function computeNativeHash(root?: string): string;
export declare function readRecordedHash(root?: string, arch?: string): string | null;
export declare function writeRecordedHash(root?: string, arch?: string): { hash: string; file: string };
export declare function checkNativeHash(
  root?: string,
  arch?: string,
  current?: string,
): { ok: boolean; current: string; recorded: string | null };
