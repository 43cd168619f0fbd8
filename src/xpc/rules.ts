// A declarative table of "when the peer does this, send these frames". An
// event is a frame the peer sent (SETTINGS, HEADERS, ...), a whole XPC
// message it sent on a stream (DATA is matched per message, with the
// message's XPC flags), or the connection opening. A rule names one pattern,
// or several that must all have been seen (in any order); it fires once, on
// the event that completes it, unless it is marked `repeat` (protocol
// housekeeping such as SETTINGS ACKs). Rules fire in table order.
import { FrameType, type Frame } from './http2-frames.js';
import type { XpcMessage } from './message.js';

export type PeerEvent =
  | { kind: 'connect' }
  | { kind: 'frame'; frame: Frame }
  | { kind: 'message'; stream: number; message: XpcMessage; raw: Buffer };

export interface EventPattern {
  /** 'connect', a frame type name, or 'message' (a whole XPC message in DATA). */
  on: 'connect' | 'message' | 'settings' | 'settingsAck' | 'headers' | 'windowUpdate' | 'ping' | 'rstStream' | 'goaway';
  stream?: number;
  /** Frame flags (exact) for frames, XPC wrapper flags (exact) for messages. */
  flags?: number;
  /** The nth event (1-based) that matches the rest of the pattern; any occurrence if left out. */
  occurrence?: number;
}

export interface Rule {
  name: string;
  when: EventPattern | EventPattern[];
  /** Frames, or a function that makes them from the triggering event. */
  emit: Frame[] | ((event: PeerEvent) => Frame[]);
  /** Fire on every match instead of once. */
  repeat?: boolean;
}

/** The parts of an event a pattern looks at. */
function describe(e: PeerEvent): { on: EventPattern['on'] | 'other'; stream: number; flags: number } {
  if (e.kind === 'connect') return { on: 'connect', stream: 0, flags: 0 };
  if (e.kind === 'message') return { on: 'message', stream: e.stream, flags: e.message.flags };
  const f = e.frame;
  const on: EventPattern['on'] | 'other' =
    f.type === FrameType.settings
      ? f.flags & 1
        ? 'settingsAck'
        : 'settings'
      : f.type === FrameType.headers
        ? 'headers'
        : f.type === FrameType.windowUpdate
          ? 'windowUpdate'
          : f.type === FrameType.ping
            ? 'ping'
            : f.type === FrameType.rstStream
              ? 'rstStream'
              : f.type === FrameType.goaway
                ? 'goaway'
                : 'other';
  // SETTINGS' ACK bit is part of its name here, not a flag to match.
  return { on, stream: f.stream, flags: f.type === FrameType.settings ? 0 : f.flags };
}

function matchesIgnoringOccurrence(p: EventPattern, d: ReturnType<typeof describe>): boolean {
  return p.on === d.on && (p.stream === undefined || p.stream === d.stream) && (p.flags === undefined || p.flags === d.flags);
}

export function patternKey(p: EventPattern): string {
  return `${p.on}/${p.stream ?? '*'}/${p.flags ?? '*'}#${p.occurrence ?? '*'}`;
}

export class RuleDispatcher {
  private readonly fired = new Set<number>();
  private readonly seen: boolean[][];
  private readonly counts: number[][];
  /** Names of the rules that fired, in order (for tests and logs). */
  readonly history: string[] = [];

  constructor(private readonly rules: readonly Rule[]) {
    this.seen = rules.map((r) => (Array.isArray(r.when) ? r.when : [r.when]).map(() => false));
    this.counts = rules.map((r) => (Array.isArray(r.when) ? r.when : [r.when]).map(() => 0));
  }

  /** Feeds one peer event; returns the frames to send in answer, in order. */
  observe(event: PeerEvent): Frame[] {
    const d = describe(event);
    const out: Frame[] = [];
    this.rules.forEach((rule, i) => {
      if (this.fired.has(i)) return;
      const patterns = Array.isArray(rule.when) ? rule.when : [rule.when];
      let completedNow = false;
      patterns.forEach((p, j) => {
        if (!matchesIgnoringOccurrence(p, d)) return;
        const n = ++this.counts[i]![j]!;
        if (p.occurrence !== undefined && p.occurrence !== n) return;
        if (rule.repeat || !this.seen[i]![j]) completedNow = true;
        this.seen[i]![j] = true;
      });
      if (!completedNow || !this.seen[i]!.every(Boolean)) return;
      if (!rule.repeat) this.fired.add(i);
      this.history.push(rule.name);
      out.push(...(typeof rule.emit === 'function' ? rule.emit(event) : rule.emit));
    });
    return out;
  }

  /** Whether the named rule has fired. */
  hasFired(name: string): boolean {
    return this.history.includes(name);
  }
}
