// The registry's errors carry Darwin's bootstrap status codes
// (bootstrap_defs.h), so a caller that knows launchd knows what each means.
// A name longer than a name_t holds has no bootstrap code of its own: MIG
// cannot even carry it. We answer KERN_INVALID_ARGUMENT (4), the kernel's
// generic code for a bad argument.

export const BOOTSTRAP_CODES = {
  NOT_PRIVILEGED: 1100,
  NAME_IN_USE: 1101,
  UNKNOWN_SERVICE: 1102,
  SERVICE_ACTIVE: 1103,
  BAD_COUNT: 1104,
  NO_MEMORY: 1105,
  BAD_NAME: 4,
} as const;

export type BootstrapErrorCode = keyof typeof BOOTSTRAP_CODES;

/** name_t is char[128]: 127 bytes and the NUL. */
export const MAX_NAME_BYTES = 127;
/** BOOTSTRAP_MAX_LOOKUP_COUNT. */
export const MAX_LOOKUP_COUNT = 20;

export class BootstrapError extends Error {
  /** Darwin's number for `code` (1101 for NAME_IN_USE, ...). */
  readonly darwinCode: number;

  constructor(
    readonly code: BootstrapErrorCode,
    message: string,
    readonly serviceName?: string,
  ) {
    super(message);
    this.name = 'BootstrapError';
    this.darwinCode = BOOTSTRAP_CODES[code];
  }
}

/** Throws BAD_NAME unless `name` is 1..127 UTF-8 bytes without NUL. */
export function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new BootstrapError('BAD_NAME', 'a service name must be a non-empty string');
  }
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES) {
    throw new BootstrapError('BAD_NAME', `service name of ${bytes} bytes is longer than ${MAX_NAME_BYTES}`, name.slice(0, 32));
  }
  if (name.includes('\0')) throw new BootstrapError('BAD_NAME', 'a service name cannot contain NUL', name);
}
