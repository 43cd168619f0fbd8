// Every TypeScript fuzz target, by name, in the order a full run takes them.
import type { Target } from '../target.js';
import { afcTarget } from './afc.js';
import { http2Target } from './http2.js';
import { lockdownTarget } from './lockdown.js';
import { plistTarget } from './plist.js';
import { usbmuxV0, usbmuxV1 } from './usbmux.js';
import { xpcTarget } from './xpc.js';

export const TARGETS: readonly Target[] = [usbmuxV0, usbmuxV1, plistTarget, lockdownTarget, xpcTarget, http2Target, afcTarget];

export function targetByName(name: string): Target | undefined {
  return TARGETS.find((t) => t.name === name);
}
