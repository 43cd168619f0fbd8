// Replay mode: a recorded RemoteXPC session (frames with direction, type,
// stream, flags and payload) served event-driven. Each run of device frames
// becomes a rule triggered by the host event just before it in the
// recording (a frame, or a whole XPC message on a stream), so nothing is
// sent before the client has done what the device reacted to. The bytes are
// the recording's, except the peer-info's top-level UUID, which is a fresh
// random one for every session (a zero or reused UUID makes clients drop the
// session).
import { readFileSync } from 'node:fs';

import { XpcError } from './errors.js';
import { dataOf, FrameType, frameTypeName, MAX_FRAME_PAYLOAD, type Frame } from './http2-frames.js';
import { decodeMessage, MessageAssembler, topLevelOffsets } from './message.js';
import { XpcType } from './object-codec.js';
import type { EventPattern, Rule } from './rules.js';
import { Uuid } from './values.js';

export interface RecordedFrame extends Frame {
  /** Who sent it: the host (client) or the device. */
  from: 'host' | 'device';
}

export interface RecordedSession {
  description?: string;
  frames: RecordedFrame[];
}

/** The JSON form: type by name, payload in hex. */
interface FixtureFrame {
  from: 'host' | 'device';
  type: string;
  flags: number;
  stream: number;
  payload: string;
}

const fixtureError = (why: string) => new XpcError('EXPCVALUE', `session fixture: ${why}`);

export function parseSessionFixture(text: string): RecordedSession {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw fixtureError(`not JSON (${(err as Error).message})`);
  }
  const frames = (raw as { frames?: unknown }).frames;
  if (!Array.isArray(frames)) throw fixtureError('no frames array');
  return {
    description: typeof (raw as { description?: unknown }).description === 'string' ? (raw as { description: string }).description : undefined,
    frames: frames.map((f: FixtureFrame, i) => {
      const type = (FrameType as Record<string, number>)[f?.type];
      if (f?.from !== 'host' && f?.from !== 'device') throw fixtureError(`frame ${i}: from is host or device`);
      if (type === undefined) throw fixtureError(`frame ${i}: unknown type ${String(f.type)}`);
      if (!Number.isInteger(f.flags) || f.flags < 0 || f.flags > 255) throw fixtureError(`frame ${i}: bad flags`);
      if (!Number.isInteger(f.stream) || f.stream < 0 || f.stream > 0x7fffffff) throw fixtureError(`frame ${i}: bad stream`);
      if (typeof f.payload !== 'string' || !/^(?:[0-9a-f]{2})*$/i.test(f.payload) || f.payload.length / 2 > MAX_FRAME_PAYLOAD) {
        throw fixtureError(`frame ${i}: payload is not hex`);
      }
      return { from: f.from, type, flags: f.flags, stream: f.stream, payload: Buffer.from(f.payload, 'hex') };
    }),
  };
}

export function formatSessionFixture(session: RecordedSession): string {
  const frames = session.frames.map((f) => ({
    from: f.from,
    type: frameTypeName(f.type),
    flags: f.flags,
    stream: f.stream,
    payload: f.payload.toString('hex'),
  }));
  return `${JSON.stringify({ description: session.description, frames }, null, 1)}\n`;
}

export const loadSessionFixture = (path: string): RecordedSession => parseSessionFixture(readFileSync(path, 'utf8'));

const PATTERN_NAMES: Record<number, EventPattern['on']> = {
  [FrameType.headers]: 'headers',
  [FrameType.windowUpdate]: 'windowUpdate',
  [FrameType.ping]: 'ping',
  [FrameType.rstStream]: 'rstStream',
  [FrameType.goaway]: 'goaway',
};

/** Where a device frame carries the top-level UUID of a whole message: the byte offset of its 16 bytes. */
function uuidOffset(frame: RecordedFrame): number | undefined {
  if (frame.from !== 'device' || frame.type !== FrameType.data || frame.flags !== 0) return undefined;
  try {
    decodeMessage(frame.payload);
    const at = topLevelOffsets(frame.payload).get('UUID');
    if (at === undefined || frame.payload.readUInt32LE(at) !== XpcType.uuid) return undefined;
    return at + 4;
  } catch {
    return undefined;
  }
}

export interface ReplayPlan {
  /** One trigger and the device frames it releases, in recording order. */
  steps: Array<{ when: EventPattern; frames: number[] }>;
  /** Device frame index -> offset of the UUID to patch. */
  uuids: Map<number, number>;
}

/** Works out, once per fixture, which host event releases which device frames. */
export function planReplay(session: RecordedSession): ReplayPlan {
  const steps: ReplayPlan['steps'] = [];
  const uuids = new Map<number, number>();
  const counts = new Map<string, number>();
  const assemblers = new Map<number, MessageAssembler>();
  let trigger: EventPattern = { on: 'connect' };
  let current: ReplayPlan['steps'][number] | undefined;
  const occurrence = (p: EventPattern): EventPattern => {
    const key = `${p.on}/${p.stream}/${p.flags}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    return { ...p, occurrence: n };
  };
  session.frames.forEach((f, i) => {
    if (f.from === 'device') {
      if (!current) steps.push((current = { when: trigger, frames: [] }));
      current.frames.push(i);
      const at = uuidOffset(f);
      if (at !== undefined) uuids.set(i, at);
      return;
    }
    if (f.type === FrameType.data) {
      let a = assemblers.get(f.stream);
      if (!a) assemblers.set(f.stream, (a = new MessageAssembler()));
      for (const raw of a.push(dataOf(f))) {
        trigger = occurrence({ on: 'message', stream: f.stream, flags: decodeMessage(raw).flags });
        current = undefined;
      }
      return;
    }
    const on = f.type === FrameType.settings ? (f.flags & 1 ? 'settingsAck' : 'settings') : PATTERN_NAMES[f.type];
    if (!on) return;
    trigger = occurrence(f.type === FrameType.settings ? { on } : { on, stream: f.stream, flags: f.flags });
    current = undefined;
  });
  return { steps, uuids };
}

/** A session's rule table: the recording's device frames, with a fresh UUID patched in. */
export function replayRules(session: RecordedSession, plan = planReplay(session), uuid = Uuid.random()): { rules: Rule[]; uuid: Uuid } {
  if (uuid.isZero()) throw new XpcError('EXPCVALUE', 'a replay session needs a non-zero UUID');
  const frameFor = (i: number): Frame => {
    const f = session.frames[i]!;
    const payload = Buffer.from(f.payload);
    const at = plan.uuids.get(i);
    if (at !== undefined) uuid.bytes.copy(payload, at);
    return { type: f.type, flags: f.flags, stream: f.stream, payload };
  };
  const rules = plan.steps.map((step, n) => ({ name: `replay-${n}`, when: step.when, emit: step.frames.map(frameFor) }));
  return { rules, uuid };
}
