// One small logger for the daemon: usbmuxd's levels, text or JSON lines, to
// stderr or a file.
import { appendFileSync } from 'node:fs';

export const LEVELS = ['fatal', 'error', 'warning', 'notice', 'info', 'debug', 'spew', 'flood'] as const;
export type Level = (typeof LEVELS)[number];

export interface LoggerOptions {
  /** Highest level printed (index into LEVELS); usbmuxd: 3 in the foreground, +1 per -v. */
  verbosity?: number;
  json?: boolean;
  file?: string;
}

export class Logger {
  readonly verbosity: number;
  private readonly json: boolean;
  private readonly file?: string;

  constructor(options: LoggerOptions = {}) {
    this.verbosity = options.verbosity ?? 3;
    this.json = options.json ?? false;
    this.file = options.file;
  }

  enabled(level: Level): boolean {
    return LEVELS.indexOf(level) <= this.verbosity;
  }

  log(level: Level, message: string, fields: Record<string, unknown> = {}): void {
    if (!this.enabled(level)) return;
    const time = new Date().toISOString();
    const line = this.json
      ? JSON.stringify({ time, level, msg: message, ...fields })
      : `${time} [${level}] ${message}${Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : ''}`;
    if (this.file) appendFileSync(this.file, `${line}\n`);
    else process.stderr.write(`${line}\n`);
  }

  error(m: string, f?: Record<string, unknown>): void { this.log('error', m, f); }
  warning(m: string, f?: Record<string, unknown>): void { this.log('warning', m, f); }
  notice(m: string, f?: Record<string, unknown>): void { this.log('notice', m, f); }
  info(m: string, f?: Record<string, unknown>): void { this.log('info', m, f); }
  debug(m: string, f?: Record<string, unknown>): void { this.log('debug', m, f); }
}

/** A logger that prints nothing, for library use and tests. */
export const silentLogger = new Logger({ verbosity: -1 });
