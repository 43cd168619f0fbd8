// A RemoteXPC test client that works frame by frame over a real TCP socket:
// it sends exactly what a test tells it to and records every frame and byte
// the device sends back, so a test can check what each step released.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

import { dataOf, frameBytes, FrameParser, FrameType, PREFACE, type Frame } from '../../src/xpc/http2-frames.js';
import { decodeMessage, encodeMessage, MessageAssembler, type XpcMessage } from '../../src/xpc/message.js';

/** A short label per frame: "settings", "windowUpdate/0", "headers/1", "data/1:0x201", "data/1:0x101 Handshake". */
export function label(f: Frame, messages: XpcMessage[] = []): string {
  switch (f.type) {
    case FrameType.settings:
      return f.flags & 1 ? 'settingsAck' : 'settings';
    case FrameType.windowUpdate:
      return `windowUpdate/${f.stream}`;
    case FrameType.headers:
      return `headers/${f.stream}`;
    case FrameType.rstStream:
      return `rstStream/${f.stream}`;
    case FrameType.goaway:
      return 'goaway';
    case FrameType.data:
      return messages
        .map((m) => {
          const type = m.body?.get('MessageType');
          return `data/${f.stream}:0x${m.flags.toString(16)}${typeof type === 'string' ? ` ${type}` : ''}`;
        })
        .join(',') || `data/${f.stream}`;
    default:
      return `type${f.type}/${f.stream}`;
  }
}

export class FrameProbe {
  readonly frames: Frame[] = [];
  readonly labels: string[] = [];
  readonly messages: Array<{ stream: number; message: XpcMessage; raw: Buffer }> = [];
  /** Every byte received, in order. */
  bytes: Buffer = Buffer.alloc(0);
  private readonly parser = new FrameParser();
  private readonly assemblers = new Map<number, MessageAssembler>();
  private checkpoint = 0;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.bytes = Buffer.concat([this.bytes, chunk]);
      for (const f of this.parser.push(chunk)) {
        const got: XpcMessage[] = [];
        if (f.type === FrameType.data) {
          let a = this.assemblers.get(f.stream);
          if (!a) this.assemblers.set(f.stream, (a = new MessageAssembler()));
          for (const raw of a.push(dataOf(f))) {
            const message = decodeMessage(raw);
            got.push(message);
            this.messages.push({ stream: f.stream, message, raw });
          }
        }
        this.frames.push(f);
        this.labels.push(label(f, got));
      }
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<FrameProbe> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new FrameProbe(socket);
  }

  preface(): void {
    this.socket.write(PREFACE);
  }

  send(...frames: Frame[]): void {
    this.socket.write(Buffer.concat(frames.map(frameBytes)));
  }

  sendMessage(stream: number, message: XpcMessage): void {
    this.send({ type: FrameType.data, flags: 0, stream, payload: encodeMessage(message) });
  }

  /**
   * Waits until at least `count` new frames have come since the last step,
   * then `quietMs` more to catch anything extra; returns the new frames'
   * labels and starts the next step.
   */
  async step(count: number, quietMs = 80, timeoutMs = 3000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length - this.checkpoint < count && Date.now() < deadline && !this.closed) await sleep(5);
    await sleep(quietMs);
    const out = this.labels.slice(this.checkpoint);
    this.checkpoint = this.labels.length;
    return out;
  }

  /** Waits until a frame with this label has come (or the connection closed); true if it came. */
  async until(wanted: string, timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.labels.includes(wanted) && !this.closed && Date.now() < deadline) await sleep(10);
    await sleep(20);
    return this.labels.includes(wanted);
  }

  close(): void {
    this.socket.destroy();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
