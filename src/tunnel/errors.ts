// Why a tunnel request failed, as a code the usbmuxd server turns into a
// Result number (src/protocol/tunnel-messages.ts) and a message that says
// what to do about it.
export type TunnelErrorCode =
  /** StartService answered InvalidService: below iOS 17.4. */
  | 'ENOCOREDEVICEPROXY'
  /** No pair record, or one without the host's certificate and key. */
  | 'ENOTPAIRED'
  /** TunnelConnect or TunnelStop on a device without a tunnel. */
  | 'ENOTUNNEL'
  /** The device left while its tunnel was starting. */
  | 'ENODEV'
  /** A bad argument (SendMSS, an address). */
  | 'EINVAL'
  /** The device answered something a phone would not. */
  | 'EPROTO';

export class TunnelError extends Error {
  constructor(
    message: string,
    readonly code: TunnelErrorCode,
  ) {
    super(message);
    this.name = 'TunnelError';
  }
}
