// The captures of one engine (docs/capture.md): started on an fd the data
// plane writes pcapng to, each device named by its UDID in the file, the
// TLS key log lines of the sessions the daemon runs itself passed in, and a
// promise per capture that settles when its writer has finished.
import type { CaptureEnd, CaptureOptions, NativeEngine } from './addon.js';

/** CaptureOptions, with one phone named by its UDID rather than its handles. */
export type CaptureStart = Omit<CaptureOptions, 'handles'> & { udid?: string };

interface Running {
  resolve: (end: CaptureEnd) => void;
  udid?: string;
}

export class EngineCaptures {
  private readonly running = new Map<number, Running>();

  constructor(
    private readonly native: NativeEngine,
    /** The devices the engine knows now, by handle, with their UDIDs. */
    private readonly devices: () => Iterable<{ handle: number; udid: string }>,
  ) {}

  get active(): boolean {
    return this.running.size > 0;
  }

  /**
   * Starts a capture on `fd` (the caller may close its own copy at once).
   * `ended` resolves when it is over, with what it wrote and dropped.
   */
  start(fd: number, options: CaptureStart): { id: number; ended: Promise<CaptureEnd> } {
    const { udid, ...rest } = options;
    const handles = udid === undefined ? undefined : [...this.devices()].filter((d) => d.udid === udid).map((d) => d.handle);
    const id = this.native.startCapture(fd, { application: 'tsmuxd', ...rest, handles });
    const ended = new Promise<CaptureEnd>((resolve) => this.running.set(id, { resolve, udid }));
    for (const d of this.devices()) this.native.captureLabel(d.handle, d.udid);
    return { id, ended };
  }

  stop(id: number, reason: string): void {
    if (this.running.has(id)) this.native.stopCapture(id, reason);
  }

  /**
   * A device attached: named in the captures before its first packet, and
   * taken by the captures of its UDID (a phone replugged has a new handle).
   */
  label(handle: number, udid: string): void {
    if (this.running.size === 0) return;
    this.native.captureLabel(handle, udid);
    for (const [id, r] of this.running) if (r.udid === udid) this.native.addCaptureDevice(id, handle);
  }

  /** A key log line (node's TLSSocket 'keylog'); nothing when no capture runs. */
  secret(line: Buffer | string): void {
    if (this.running.size > 0) this.native.captureSecret(typeof line === 'string' ? line : line.toString('latin1'));
  }

  /**
   * Ends every capture now, gracefully (statistics written): the daemon's
   * orderly stop, before the engine closes. Resolves when all have ended
   * or after `timeoutMs`.
   */
  async stopAll(reason: string, timeoutMs: number): Promise<void> {
    const waits = [...this.running.keys()].map((id) => new Promise<void>((resolve) => {
      const r = this.running.get(id)!;
      const previous = r.resolve;
      r.resolve = (end) => {
        previous(end);
        resolve();
      };
      this.native.stopCapture(id, reason);
    }));
    if (waits.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.all(waits), deadline]);
    clearTimeout(timer);
  }

  /** The engine closed: the data plane abandoned its captures, and says no more. */
  abortAll(reason: string): void {
    for (const [capture, r] of this.running) r.resolve({ capture, code: 'EIO', reason, packets: 0, bytes: 0, dropped: 0 });
    this.running.clear();
  }

  /** The engine's captureEnded event. */
  ended(end: CaptureEnd): void {
    const r = this.running.get(end.capture);
    this.running.delete(end.capture);
    r?.resolve(end);
  }
}
