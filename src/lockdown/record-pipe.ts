// TLS over whole records, for lockdown's in-band TLS that can end again
// (StopSession, reference §1.7.5). The raw socket's bytes are split into TLS
// records and pushed in here; what TLS writes goes straight to the raw
// socket. Ending it does not end the raw socket, so after both close_notify
// alerts the same connection goes on in plaintext. Both ends use it: the
// simulated phone as the TLS server, the lockdown client as the TLS client.
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

export class RecordPipe extends Duplex {
  constructor(private readonly raw: Socket) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.raw.destroyed) this.raw.write(chunk);
    cb();
  }
  override _final(cb: (err?: Error | null) => void): void {
    cb();
  }
}
