// The user commands' way to a daemon and a phone; the lockdown session
// helpers themselves live in the client library (src/client/lockdown-session.ts).
import type { UsbmuxClient } from '../../client/index.js';
import { addTlsKeylogSink, keylogFile } from '../../lockdown/keylog.js';
import { clientFor, daemonAddress } from './common.js';

export interface CommonOptions {
  socket?: string;
  json?: boolean;
  /** Append the TLS sessions' key log (SSLKEYLOGFILE format) to this file. */
  keylog?: string;
}

export const KEYLOG_HELP = `      --keylog FILE   append the TLS key log (SSLKEYLOGFILE format) to FILE, for Wireshark
                      (editcap --inject-secrets tls,FILE; docs/capture.md)
`;

export function usbmuxClient(o: CommonOptions): UsbmuxClient {
  // The file stays open for the command's life: its sessions end with it.
  if (o.keylog) addTlsKeylogSink(keylogFile(o.keylog).sink);
  return clientFor(daemonAddress(o.socket));
}

