// What can go wrong talking to lockdownd. `code` is lockdownd's own error
// string when the device answered one (InvalidHostID, PasswordProtected,
// PairingDialogResponsePending, UserDeniedPairing, ...), or one of ours when
// the conversation itself failed.
export const LOCKDOWN_TIMEOUT = 'ETIMEDOUT';
/** The reply was not a lockdown plist (not a plist, not a dict, wrong types). */
export const LOCKDOWN_PROTOCOL = 'EPROTO';
/** The connection ended before the reply. */
export const LOCKDOWN_CLOSED = 'ECONNRESET';
/** The session or service TLS handshake failed. */
export const LOCKDOWN_TLS = 'ETLS';

export class LockdownError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly request?: string,
  ) {
    super(message);
    this.name = 'LockdownError';
  }

  /** True when the device itself answered with this lockdown error string. */
  is(code: string): boolean {
    return this.code === code;
  }
}
