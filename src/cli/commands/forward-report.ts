// What `tsmuxd forward` prints. On a terminal: a line per connection and per
// device event, under one status line (bytes and rate per mapping) redrawn
// in place. With --json: one JSON line per event. Otherwise: errors only.
import type { UsbmuxDevice } from '../../client/usbmux-client.js';
import { formatBytes, formatRate, jsonLine } from './common.js';
import type { MappingState } from './forward.js';

const REDRAW_MS = 500;
/** Rates are averaged over about this long. */
const RATE_WINDOW_MS = 1500;

interface Sample {
  at: number;
  up: number;
  down: number;
}

export class ForwardReporter {
  private timer: NodeJS.Timeout | undefined;
  private statusShown = false;
  private readonly samples = new Map<MappingState, Sample[]>();

  constructor(private readonly options: { json: boolean; tty: boolean }) {}

  private get live(): boolean {
    return this.options.tty && !this.options.json;
  }

  /** A line above the status line (terminal only). */
  private say(text: string): void {
    if (!this.live) return;
    this.clearStatus();
    process.stdout.write(`${text}\n`);
  }

  private clearStatus(): void {
    if (this.statusShown) process.stdout.write('\r\x1b[K');
    this.statusShown = false;
  }

  listening(state: MappingState): void {
    const { host, devicePort, label } = state.mapping;
    if (this.options.json) jsonLine({ event: 'listening', mapping: label, host, port: state.boundPort, devicePort });
    this.say(`listening on ${host.includes(':') ? `[${host}]` : host}:${state.boundPort} -> device port ${devicePort}`);
  }

  waiting(conn: number, state: MappingState, udid?: string): void {
    if (this.options.json) jsonLine({ event: 'waiting', conn, mapping: state.mapping.label, ...(udid ? { udid } : {}) });
    this.say(`#${conn} waiting for ${udid ?? 'a device'}`);
  }

  opened(conn: number, state: MappingState, peer: string, d: UsbmuxDevice): void {
    const { label, devicePort } = state.mapping;
    if (this.options.json) {
      jsonLine({ event: 'open', conn, mapping: label, peer, deviceId: d.deviceId, udid: d.serialNumber, devicePort });
    }
    this.say(`#${conn} ${peer} -> device ${d.deviceId} (${d.serialNumber}) port ${devicePort}`);
  }

  closed(conn: number, state: MappingState, d: UsbmuxDevice | undefined, up: number, down: number, ms: number, failure: Error | null): void {
    if (this.options.json) {
      jsonLine({
        event: 'close',
        conn,
        mapping: state.mapping.label,
        ...(d ? { deviceId: d.deviceId } : {}),
        bytesToDevice: up,
        bytesFromDevice: down,
        ms,
        ...(failure ? { error: failure.message } : {}),
      });
    }
    const why = failure ? ` (${failure.message})` : '';
    this.say(`#${conn} closed: ${formatBytes(up)} to the device, ${formatBytes(down)} back, ${(ms / 1000).toFixed(1)} s${why}`);
  }

  device(kind: 'attached' | 'detached', d: UsbmuxDevice): void {
    if (this.options.json) jsonLine({ event: 'device', type: kind, deviceId: d.deviceId, udid: d.serialNumber });
    this.say(`device ${d.deviceId} (${d.serialNumber}) ${kind}`);
  }

  notice(message: string): void {
    if (this.options.json) jsonLine({ event: 'notice', message });
    this.say(message);
  }

  error(message: string, conn?: number): void {
    if (this.options.json) {
      jsonLine({ event: 'error', message, ...(conn !== undefined ? { conn } : {}) });
      return;
    }
    this.clearStatus();
    process.stderr.write(`tsmuxd forward: ${message}\n`);
  }

  start(states: MappingState[]): void {
    if (!this.live) return;
    this.timer = setInterval(() => this.draw(states), REDRAW_MS);
    this.draw(states);
  }

  stop(states: MappingState[]): void {
    clearInterval(this.timer);
    if (!this.live) return;
    this.draw(states);
    process.stdout.write('\n');
    this.statusShown = false;
  }

  private rate(state: MappingState, now: number, up: number, down: number): { up: number | null; down: number | null } {
    const list = this.samples.get(state) ?? [];
    list.push({ at: now, up, down });
    while (list.length > 2 && now - list[1].at >= RATE_WINDOW_MS) list.shift();
    this.samples.set(state, list);
    const first = list[0];
    const dt = (now - first.at) / 1000;
    if (dt <= 0) return { up: null, down: null };
    return { up: (up - first.up) / dt, down: (down - first.down) / dt };
  }

  private draw(states: MappingState[]): void {
    const now = Date.now();
    const parts = states.map((s) => {
      const { up, down } = s.bytes();
      const r = this.rate(s, now, up, down);
      return `${s.mapping.label.replace(/:(\d+)$/, '->$1')} up ${formatBytes(up)} ${formatRate(r.up)} down ${formatBytes(down)} ${formatRate(r.down)} (${s.open.size} open)`;
    });
    const width = Math.max(20, (process.stdout.columns ?? 120) - 1);
    let line = parts.join(' | ');
    if (line.length > width) line = `${line.slice(0, width - 1)}~`;
    process.stdout.write(`\r\x1b[K${line}`);
    this.statusShown = true;
  }
}
