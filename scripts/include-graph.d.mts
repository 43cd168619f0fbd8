// Types for scripts/include-graph.mjs (imported by test/native-layers.test.ts).
export interface NativeInclude {
  from: string;
  line: number;
  text: string;
  to: string | null;
  fromFolder: string;
  toFolder: string | null;
}
export declare const repoRoot: string;
export declare const NATIVE_DIR: string;
export declare const NATIVE_INCLUDE_DIRS: readonly string[];
export declare const THIRD_PARTY_INCLUDE: RegExp;
export declare function folderOf(nativeRelative: string): string;
export declare function nativeIncludes(root?: string): NativeInclude[];
export declare function folderGraph(includes: NativeInclude[]): Map<string, string[]>;
export declare function folderCycles(graph: Map<string, string[]>): string[][];
export declare function formatGraph(graph: Map<string, string[]>): string;
