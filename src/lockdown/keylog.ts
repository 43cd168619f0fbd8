// The TLS key log of the lockdown sessions this process runs (session TLS
// after StartSession, and service TLS), in the SSLKEYLOGFILE format that
// Wireshark reads. The daemon hands the lines to its running captures,
// which write them into the pcapng as Decryption Secrets Blocks; the CLI's
// lockdown commands write them to a file with --keylog (docs/capture.md).
// Without a sink no 'keylog' listener is added, so OpenSSL logs nothing.
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';

export type KeylogSink = (line: Buffer) => void;

const sinks = new Set<KeylogSink>();

/**
 * Every later lockdown TLS session's key log lines go to `sink` too (one
 * per daemon in the process, or the CLI's file); returns its removal.
 */
export function addTlsKeylogSink(sink: KeylogSink): () => void {
  sinks.add(sink);
  return () => sinks.delete(sink);
}

/** Called on each TLS socket the lockdown client makes, before its handshake ends. */
export function watchKeylog(secure: TLSSocket): void {
  if (sinks.size === 0) return;
  secure.on('keylog', (line: Buffer) => {
    for (const sink of sinks) sink(line);
  });
}

/**
 * A sink appending to `path` (made 0600: the lines decrypt the session),
 * each line written whole as it comes. Returns the function that closes it.
 */
export function keylogFile(path: string): { sink: KeylogSink; close: () => void } {
  const fd = openSync(path, 'a', 0o600);
  if (!fstatSync(fd).isFile() && !fstatSync(fd).isFIFO()) {
    closeSync(fd);
    throw new Error(`${path} is not a file`);
  }
  let open = true;
  return {
    sink: (line) => {
      if (open) writeSync(fd, line.at(-1) === 0x0a ? line : Buffer.concat([line, Buffer.from('\n')]));
    },
    close: () => {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}
