// The user commands' way to a daemon and a phone; the lockdown session
// helpers themselves live in the client library (src/client/lockdown-session.ts).
import type { UsbmuxClient } from '../../client/index.js';
import { clientFor, daemonAddress } from './common.js';

export interface CommonOptions {
  socket?: string;
  json?: boolean;
}

export function usbmuxClient(o: CommonOptions): UsbmuxClient {
  return clientFor(daemonAddress(o.socket));
}

