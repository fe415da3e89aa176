/**
 * The daemon's logger: pino writing JSON lines synchronously to a size-rotated file and, optionally,
 * a one-line human format to stderr.
 *
 * Rules (docs/building-blocks.md, "pino 10 and ws 8"):
 * - Redaction is configured once, here, on the root. A child created with its own `redact` option
 *   REPLACES the root's paths, so never pass `redact` to `.child()`; use `serverLogger()` / plain
 *   `logger.child({ component })`.
 * - `*` in a redact path matches exactly one level: `*.env` catches `{ spawn: { env } }` but not
 *   `{ a: { b: { env } } }`. Log secrets-bearing objects at the top level or one level down, or pass
 *   them through `redactEnv()` / `redactUrl()` first. Secrets inside strings are never caught by paths.
 * - Writes are synchronous (no worker transport), so lines survive SIGTERM/SIGKILL right after logging.
 */
import * as fs from 'node:fs';
import pino from 'pino';
import type { Logger, DestinationStream, StreamEntry } from 'pino';
import { RotatingFileDestination } from './rotating-file-destination.js';
import { SourceRateLimit } from './source-rate-limit.js';
import { LOG_LEVELS, isLogLevel } from './log-levels.js';

export type { Logger } from 'pino';

export { LOG_LEVELS, isLogLevel, type LogLevel } from './log-levels.js';

export const REDACTED = '[redacted]';

/** Root redact paths. `*` is one level only. */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'env',
  '*.env',
  'headers',
  '*.headers',
  'authorization',
  '*.authorization',
  'token',
  '*.token',
  'req.headers.authorization',
  'req.headers.cookie',
]);

export interface CreateLoggerOptions {
  level: string;
  /** JSON lines go here (rotated). Omit for console-only logging. */
  filePath?: string;
  maxBytes: number;
  maxFiles: number;
  /** Also write a human-friendly line per record to stderr. */
  console: boolean;
  /** Where console lines go instead of fd 2 (tests). */
  consoleStream?: { write(line: string): unknown };
  /** Also hand every JSON line to this destination (e.g. a LogTap feeding the control channel). */
  tap?: { write(line: string): unknown };
  /** Colour console levels. Default: stderr is a TTY and NO_COLOR is unset. */
  color?: boolean;
  /**
   * Lines per second and source (child bindings) before lines are suppressed and summarised
   * (source-rate-limit.ts, settings.logLinesPerSecond). 0 or absent: no limit.
   */
  linesPerSecond?: number;
}

export interface CreatedLogger {
  logger: Logger;
  /** Flushes and closes the log file. Later records still reach the console (if enabled). Idempotent. */
  close(): void;
  /** The file destination, when filePath was given (for errorCount / diagnostics). */
  file?: RotatingFileDestination;
  /** Lines suppressed by the per-source rate limit so far. */
  suppressed(): number;
}

export function createLogger(opts: CreateLoggerOptions): CreatedLogger {
  if (!isLogLevel(opts.level)) {
    throw new RangeError(`invalid log level "${opts.level}" (expected one of ${LOG_LEVELS.join(', ')})`);
  }
  const streams: StreamEntry[] = [];
  let file: RotatingFileDestination | undefined;
  if (opts.filePath) {
    file = new RotatingFileDestination({ path: opts.filePath, maxBytes: opts.maxBytes, maxFiles: opts.maxFiles });
    streams.push({ level: 'trace', stream: file });
  }
  if (opts.tap) streams.push({ level: 'trace', stream: opts.tap as DestinationStream });
  if (opts.console) {
    const color = opts.color ?? (process.stderr.isTTY === true && !process.env.NO_COLOR);
    streams.push({ level: 'trace', stream: new ConsoleDestination(opts.consoleStream, color) });
  }
  const limit = opts.linesPerSecond ? new SourceRateLimit({ linesPerSecond: opts.linesPerSecond }) : undefined;
  // The per-stream level is 'trace': the logger's own level (changeable at runtime) is the only filter.
  const logger = pino(
    {
      level: opts.level,
      // pino reads hooks.logMethod unconditionally once `hooks` is present: set it only with a limit.
      ...(limit
        ? {
            hooks: {
              logMethod(args, method, level) {
                if (limit.allow(this, level)) method.apply(this, args);
              },
            },
          }
        : {}),
      base: { pid: process.pid },
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      serializers: {
        err: pino.stdSerializers.err,
        url: (v: unknown) => (typeof v === 'string' ? redactUrl(v) : v instanceof URL ? redactUrl(v.href) : v),
      },
    },
    pino.multistream(streams),
  );
  skipRedactionOfPrimitives(logger);
  let closed = false;
  return {
    logger,
    file,
    suppressed: () => limit?.suppressed() ?? 0,
    close() {
      if (closed) return;
      closed = true;
      limit?.flush();
      file?.close();
    },
  };
}

type Stringifier = (value: unknown, stringifySafe?: unknown) => string | undefined;

/**
 * The `*.x` paths make pino pass every value of every line, and every child binding, through the
 * redactor of the paths under `*`, strings and numbers included: @pinojs/redact then parses each of
 * its paths again and looks for them in the string (~80 µs per server at start: a child logger and
 * two lines). A string, number or boolean cannot hold a path, and for one the redactor's result is
 * exactly `JSON.stringify(value)`; objects (and anything else) still go through it. The stringifiers
 * table is shared by the root and its children (pino copies it only for a child with its own
 * `redact`, which we never pass). Where pino's internals are not as expected, nothing changes.
 */
function skipRedactionOfPrimitives(logger: Logger): void {
  const symbols = pino.symbols as unknown as { stringifiersSym?: symbol; wildcardFirstSym?: symbol };
  const { stringifiersSym, wildcardFirstSym } = symbols;
  if (typeof stringifiersSym !== 'symbol' || typeof wildcardFirstSym !== 'symbol') return;
  const table = (logger as unknown as Record<symbol, Record<symbol, Stringifier> | undefined>)[stringifiersSym];
  const redactUnderWildcard = table?.[wildcardFirstSym];
  if (!table || typeof redactUnderWildcard !== 'function') return;
  table[wildcardFirstSym] = (value, stringifySafe) => {
    const t = typeof value;
    return t === 'string' || t === 'number' || t === 'boolean' ? JSON.stringify(value) : redactUnderWildcard(value, stringifySafe);
  };
}

/** The per-server child logger. Never pass `redact` to a child (it would replace the root's). */
export function serverLogger(logger: Logger, name: string): Logger {
  return logger.child({ server: name });
}

/** Keys kept, every value replaced: shows which variables were set without leaking them. */
export function redactEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(env)) out[k] = REDACTED;
  return out;
}

const SENSITIVE_PARAM = /token|key|secret|passw|pwd|auth|sig|credential|session|cookie/i;

/**
 * Strips userinfo (`scheme://user:pass@host` → `scheme://host`) and replaces the values of query
 * (and fragment) parameters whose name looks secret (token, key, secret, password, auth, sig, …,
 * case-insensitive substring). Everything else is left byte-for-byte as given. Not a URL
 * normaliser: unparsable input is treated the same way, textually.
 */
export function redactUrl(url: string): string {
  let s = url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
  const hashAt = s.indexOf('#');
  let fragment = '';
  if (hashAt >= 0) {
    fragment = s.slice(hashAt + 1);
    s = s.slice(0, hashAt);
  }
  const qAt = s.indexOf('?');
  if (qAt >= 0) s = s.slice(0, qAt + 1) + redactParams(s.slice(qAt + 1));
  if (hashAt >= 0) s += '#' + (fragment.includes('=') ? redactParams(fragment) : fragment);
  return s;
}

function redactParams(query: string): string {
  return query
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq < 0) return part;
      const rawKey = part.slice(0, eq);
      let key = rawKey;
      try {
        key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      } catch {
        // malformed escape: match the raw text
      }
      return SENSITIVE_PARAM.test(key) ? `${rawKey}=${REDACTED}` : part;
    })
    .join('&');
}

/** A flag or key name that carries a secret: token, secret, password, pwd, credential, auth, api key, `key`. */
const SECRET_NAME = /(token|secret|passw|pwd|credential|auth|api[-_]?key|(^|[-_])key($|[-_]))/i;
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/\s@]+@/gi;

/**
 * Secrets inside a command line's arguments (`server.add` echoed `--api-key=…`): the value
 * of `--name=value` / `name=value` whose name looks secret, the argument after a secret-looking
 * `--name` flag, credentials in URLs and query strings. Other arguments are returned as given.
 */
export function redactArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  let redactNext = false;
  for (const arg of args) {
    if (redactNext && !arg.startsWith('-')) {
      out.push(REDACTED);
      redactNext = false;
      continue;
    }
    redactNext = false;
    const flag = /^(-{1,2}[A-Za-z0-9_.-]+)$/.exec(arg);
    if (flag && SECRET_NAME.test(flag[1]!)) {
      redactNext = true;
      out.push(arg);
      continue;
    }
    out.push(redactSecrets(arg));
  }
  return out;
}

/**
 * Secrets in free text (a command, an error message): `name=value` and `--name value` with a
 * secret-looking name, `Bearer <token>`, credentials in URLs. Everything else is left as is.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(URL_IN_TEXT, (url) => redactUrl(url).replace(URL_USERINFO, `$1${REDACTED}@`))
    .replace(URL_USERINFO, `$1${REDACTED}@`)
    .replace(
      /(^|[\s"'&;,(])(-{0,2}[A-Za-z0-9_.-]+)(=|:(?!\/)\s*|\s+)([^\s"'&;,)]+)/g,
      (m, pre: string, name: string, sep: string, value: string) => {
        if (!SECRET_NAME.test(name) || value === REDACTED) return m;
        // `--token value` only for flags; a bare word followed by a space is prose ("token expired").
        if (/^\s+$/.test(sep) && !name.startsWith('-')) return m;
        if (/^\s+$/.test(sep) && value.startsWith('-')) return m;
        return `${pre}${name}${sep}${REDACTED}`;
      },
    )
    .replace(/\b(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${REDACTED}`);
}

// ---------------------------------------------------------------------------------------------
// Console formatter: `time level [component/server] msg key=val…`, one line per record.

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
const OMIT = new Set(['time', 'level', 'pid', 'hostname', 'msg', 'component', 'server']);
const MAX_VALUE_CHARS = 500;

class ConsoleDestination implements DestinationStream {
  constructor(
    private readonly out: { write(line: string): unknown } | undefined,
    private readonly color: boolean,
  ) {}

  write(chunk: string): void {
    let line: string;
    try {
      line = formatConsoleLine(JSON.parse(chunk) as Record<string, unknown>, this.color);
    } catch {
      line = chunk.endsWith('\n') ? chunk : chunk + '\n';
    }
    if (this.out) {
      try {
        this.out.write(line);
      } catch {
        // never throw out of logging
      }
      return;
    }
    writeStderrSync(line);
  }
}

function writeStderrSync(line: string): void {
  const buf = Buffer.from(line, 'utf8');
  let off = 0;
  let spins = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(2, buf, off, buf.length - off);
    } catch (err) {
      // A non-blocking stderr pipe can say EAGAIN; retry briefly, then drop the rest of the line.
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN' && ++spins < 100) continue;
      return;
    }
  }
}

/** Exported for tests. `rec` is one parsed pino JSON record. */
export function formatConsoleLine(rec: Record<string, unknown>, color = false): string {
  const t = typeof rec.time === 'number' || typeof rec.time === 'string' ? new Date(rec.time) : new Date();
  const time = Number.isNaN(t.getTime()) ? String(rec.time) : localTime(t);
  const levelNum = typeof rec.level === 'number' ? rec.level : 30;
  let level = (LEVEL_NAMES[levelNum] ?? String(rec.level)).padEnd(5);
  if (color) level = `\x1b[${LEVEL_COLORS[levelNum] ?? '0'}m${level}\x1b[0m`;
  const scope = [rec.component, rec.server].filter((x) => x !== undefined && x !== null && x !== '').join('/');
  const parts = [time, level];
  if (scope) parts.push(`[${scope}]`);
  if (rec.msg !== undefined && rec.msg !== '') parts.push(oneLine(String(rec.msg)));
  for (const [k, v] of Object.entries(rec)) {
    if (OMIT.has(k) || v === undefined) continue;
    parts.push(`${k}=${formatValue(k, v)}`);
  }
  return parts.join(' ') + '\n';
}

function formatValue(key: string, v: unknown): string {
  if (key === 'err' && v && typeof v === 'object') {
    const e = v as { type?: unknown; message?: unknown; code?: unknown };
    const head = [e.type, e.message].filter((x) => x !== undefined && x !== '').join(': ');
    return quote(e.code !== undefined ? `${head} (${String(e.code)})` : head);
  }
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? clip(v) : quote(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  let json: string;
  try {
    json = JSON.stringify(v) ?? String(v);
  } catch {
    json = String(v);
  }
  return clip(json);
}

function quote(s: string): string {
  return clip(JSON.stringify(s));
}

function clip(s: string): string {
  return s.length > MAX_VALUE_CHARS ? s.slice(0, MAX_VALUE_CHARS) + '…' : s;
}

function oneLine(s: string): string {
  return s.replace(/\r?\n/g, '\\n');
}

function localTime(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
