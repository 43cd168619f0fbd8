// Loads the testing addon (tsmuxd_testing.node): what only tests, benches and
// the lab use, kept out of the daemon's addon and out of the published
// package. It is found as the main addon is (src/native/addon.ts): under
// TSMUXD_NATIVE_DIR when set (the ASan build), else build/Release of a
// developer build, else the committed prebuild.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { NativeError, packageRoot, type CableDescriptor, type DecodedPacket, type FfsInterfaceSpec, type PacketSpec } from './addon.js';

export interface RawCable {
  send(transfer: Buffer): void;
  /** The next transfer (empty for a ZLP), or null after timeoutMs. Blocks the calling thread. */
  recv(timeoutMs: number): Buffer | null;
  accept(timeoutMs: number): RawCable | null;
  close(): void;
}

/** Direct access to the wire format, for tests and diagnostics. */
export interface WireTools {
  encodePacket(spec: PacketSpec): Buffer;
  decodePacket(packet: Buffer, version: 1 | 2): DecodedPacket;
  encodeCableDescriptor(d: CableDescriptor): Buffer;
  decodeCableDescriptor(bytes: Buffer): Required<CableDescriptor>;
  /** What the FunctionFS transport writes to ep0: v2 descriptors and strings. */
  encodeFfsDescriptors(spec?: FfsInterfaceSpec): { descriptors: Buffer; strings: Buffer };
  StreamReassembler: new (headerSize: 8 | 16) => { feed(transfer: Buffer): Buffer[] };
  MessageAssembler: new (maxPacketSize: number) => {
    feed(transfer: Buffer): { messages: Buffer[]; faults: NativeError[] };
  };
  RawCable: new (mode: 'connect' | 'listen', path: string) => RawCable;
}

/**
 * The lab's raw bulk measuring device (native/testing/raw_bulk.h has its
 * protocol) on a mounted FunctionFS: descriptors written at construction,
 * one device per ENABLE, on its own event thread until close().
 */
export interface RawBulkDevice {
  close(): void;
  stats(): { transfersOut: number; transfersIn: number; usbBytesOut: number; usbBytesIn: number };
}

export interface LifetimeProbeResult {
  name: string;
  ok: boolean;
  detail: string;
}

export interface NativeTestingAddon {
  setErrorClass(cls: typeof NativeError): void;
  wire: WireTools;
  RawBulkDevice: new (ffsDir: string, onLog: (level: string, text: string) => void) => RawBulkDevice;
  /** The event loop's lifetime checks (native/testing/lifetime_probe.h), run on real loop threads. */
  lifetimeProbes(): LifetimeProbeResult[];
}

export const TESTING_ADDON = 'tsmuxd_testing';

/** Where the testing addon would be loaded from, in order of preference. */
export function testingAddonCandidates(): string[] {
  const tuple = `${process.platform}-${process.arch}`;
  const dirs = process.env.TSMUXD_NATIVE_DIR ? [process.env.TSMUXD_NATIVE_DIR] : [packageRoot];
  const out: string[] = [];
  for (const dir of dirs) {
    out.push(join(dir, 'build', 'Release', `${TESTING_ADDON}.node`));
    if (!process.env.TSMUXD_NATIVE_DIR) {
      out.push(join(dir, 'build', 'Debug', `${TESTING_ADDON}.node`));
      out.push(join(dir, 'prebuilds', tuple, `${TESTING_ADDON}.napi.node`));
    }
  }
  return out;
}

let loaded: NativeTestingAddon | undefined;

/** The testing addon, or null where it is absent (an installed package). */
export function loadNativeTesting(): NativeTestingAddon | null {
  if (loaded) return loaded;
  const file = testingAddonCandidates().find((f) => existsSync(f));
  if (!file) return null;
  const addon = createRequire(import.meta.url)(file) as NativeTestingAddon;
  for (const key of ['setErrorClass', 'wire', 'RawBulkDevice', 'lifetimeProbes'] as const) {
    if (!(key in addon)) throw new Error(`${file} is missing ${key}; rebuild it`);
  }
  addon.setErrorClass(NativeError);
  loaded = addon;
  return addon;
}

/** The testing addon; throws where it is absent. */
export function nativeTesting(): NativeTestingAddon {
  const addon = loadNativeTesting();
  if (!addon) {
    throw new Error(`the testing addon (${TESTING_ADDON}) is not here: it ships only in a checkout (npm run build:native or the committed prebuild)`);
  }
  return addon;
}
