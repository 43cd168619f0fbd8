// The stats snapshot as a promise: the JS thread asks the event thread for a
// collection and goes on; the answer comes back as a `snapshot` event
// carrying the request's id. At most one collection is asked for at a time,
// and callers meanwhile share it, so any number of stats requests cost one
// pass. A late answer to a request that timed out is dropped.
import { NativeError, type EngineSnapshot } from './addon.js';

/** How long a snapshot may take before its callers get ERR_TIMEOUT. */
export const SNAPSHOT_TIMEOUT_MS = 5_000;

interface PendingSnapshot {
  id: number;
  promise: Promise<EngineSnapshot>;
  resolve: (snap: EngineSnapshot) => void;
  reject: (err: NativeError) => void;
  timer: NodeJS.Timeout;
}

export class SnapshotRequests {
  private inFlight: PendingSnapshot | undefined;
  private nextId = 1;

  constructor(private readonly request: (id: number) => void) {}

  snapshot(): Promise<EngineSnapshot> {
    if (this.inFlight) return this.inFlight.promise;
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    let resolve!: PendingSnapshot['resolve'];
    let reject!: PendingSnapshot['reject'];
    const promise = new Promise<EngineSnapshot>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const timer = setTimeout(() => {
      this.settle(id, new NativeError(`the event thread did not answer the snapshot request within ${SNAPSHOT_TIMEOUT_MS} ms`, 'ERR_TIMEOUT'));
    }, SNAPSHOT_TIMEOUT_MS);
    timer.unref();
    this.inFlight = { id, promise, resolve, reject, timer };
    try {
      this.request(id);
    } catch (err) {
      this.settle(id, err instanceof NativeError ? err : new NativeError(String(err), 'ERR_ENGINE_CLOSED'));
    }
    return promise;
  }

  /** Answers the snapshot in flight if it is `id`. */
  settle(id: number, outcome: EngineSnapshot | NativeError): void {
    const pending = this.inFlight;
    if (!pending || pending.id !== id) return;
    this.inFlight = undefined;
    clearTimeout(pending.timer);
    if (outcome instanceof NativeError) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  abort(err: NativeError): void {
    if (this.inFlight) this.settle(this.inFlight.id, err);
  }
}
