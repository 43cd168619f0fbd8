// Bad arguments to a tsmuxd command. Its own module, so main.ts can tell it
// apart without loading any command.

/** Bad arguments: main.ts prints the message and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
