/**
 * A pino destination that appends to a file synchronously and rotates it by size.
 *
 * Every `write` is a blocking `fs.writeSync`, so a line is in the kernel's page cache before the
 * logging call returns: it survives SIGTERM and even SIGKILL of the process immediately afterwards
 * (pino's worker-thread transport lost everything on SIGTERM, see docs/building-blocks.md).
 *
 * Rotation: when appending a chunk would make the file exceed `maxBytes`, the file is closed,
 * `<path>.(maxFiles-1)` … `<path>.1` are shifted up by one (the oldest, `<path>.<maxFiles>`, is
 * deleted), `<path>` becomes `<path>.1`, and a fresh `<path>` is opened. A chunk is never split
 * across files, so each file holds at most `maxBytes` bytes, or one line if a single line is
 * larger than that. Disk use is bounded by about (maxFiles + 1) * maxBytes whatever is logged.
 *
 * `write` never throws: an I/O error is counted (`errorCount`, `lastError`), the descriptor is
 * dropped, and the next write tries to reopen the file. If rotation itself fails, lines that would
 * break the size bound are dropped (`dropped`) instead of growing the file without limit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixModeSync, openNoFollowSync } from '../store/no-follow.js';

export interface RotatingFileOptions {
  /** The live log file, e.g. `~/.local/state/mcp-warden/daemon.log`. Its directory is created (0700) if missing. */
  path: string;
  /** Rotate before the file would exceed this many bytes. Must be ≥ 1. */
  maxBytes: number;
  /** How many rotated files (`<path>.1` … `<path>.<maxFiles>`) to keep. 0 keeps none. */
  maxFiles: number;
  /** File mode on creation (and enforced on open). Default 0o600. */
  mode?: number;
}

export class RotatingFileDestination {
  readonly path: string;
  readonly maxBytes: number;
  readonly maxFiles: number;
  private readonly mode: number;
  private fd = -1;
  private size = 0;
  private closed = false;
  private _errorCount = 0;
  private _lastError: Error | undefined;
  private _rotations = 0;
  private _dropped = 0;

  constructor(opts: RotatingFileOptions) {
    if (!opts.path) throw new TypeError('RotatingFileDestination: path is required');
    if (!Number.isFinite(opts.maxBytes) || opts.maxBytes < 1) {
      throw new RangeError(`RotatingFileDestination: maxBytes must be ≥ 1 (got ${opts.maxBytes})`);
    }
    if (!Number.isInteger(opts.maxFiles) || opts.maxFiles < 0) {
      throw new RangeError(`RotatingFileDestination: maxFiles must be an integer ≥ 0 (got ${opts.maxFiles})`);
    }
    this.path = path.resolve(opts.path);
    this.maxBytes = Math.floor(opts.maxBytes);
    this.maxFiles = opts.maxFiles;
    this.mode = opts.mode ?? 0o600;
    // Open eagerly so a misconfigured path shows up in errorCount before the first line,
    // but never throw from here either: the first write retries.
    this.tryOpen();
  }

  /** I/O errors seen so far (open, write, rotate). */
  get errorCount(): number {
    return this._errorCount;
  }

  get lastError(): Error | undefined {
    return this._lastError;
  }

  /** Lines dropped because rotation failed and writing would have broken the size bound. */
  get dropped(): number {
    return this._dropped;
  }

  /** How many times the file has been rotated by this instance. */
  get rotations(): number {
    return this._rotations;
  }

  /** Synchronous append. Returns true (pino ignores the value; stream-like callers read it as "no backpressure"). */
  write(chunk: string | Uint8Array): boolean {
    if (this.closed) return true;
    try {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
      if (buf.length === 0) return true;
      if (this.fd < 0 && !this.tryOpen()) return true;
      if (this.size > 0 && this.size + buf.length > this.maxBytes) {
        this.rotate();
        if (this.fd < 0) return true;
        if (this.size > 0 && this.size + buf.length > this.maxBytes) {
          // Rotation failed (e.g. rename refused) and we reopened the old file: drop the line
          // rather than grow past the disk bound.
          this._dropped++;
          return true;
        }
      }
      let off = 0;
      while (off < buf.length) {
        off += fs.writeSync(this.fd, buf, off, buf.length - off);
      }
      this.size += buf.length;
    } catch (err) {
      this.fail(err);
    }
    return true;
  }

  /** Writes are already synchronous; this only exists for pino (multistream/final flush). */
  flushSync(): void {
    // Nothing is buffered in user space. fsync would only matter for power loss, not process death.
  }

  /** pino's `logger.flush(cb)` calls this when present. */
  flush(cb?: (err?: Error) => void): void {
    cb?.();
  }

  /** Closes the descriptor; later writes are ignored. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeFd();
  }

  /** Alias of close() for pino.multistream's `end()`. */
  end(): void {
    this.close();
  }

  private tryOpen(): boolean {
    try {
      fs.mkdirSync(path.dirname(this.path), { recursive: true, mode: 0o700 });
      // Never through a symlink (no-follow.ts): E_DATA_FILE_SYMLINK lands in lastError, the target untouched.
      const fd = openNoFollowSync(this.path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, this.mode);
      fixModeSync(fd, this.mode);
      this.fd = fd;
      this.size = fs.fstatSync(fd).size;
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  private rotate(): void {
    this.closeFd();
    try {
      if (this.maxFiles === 0) {
        rmIfExists(this.path);
      } else {
        rmIfExists(`${this.path}.${this.maxFiles}`);
        for (let i = this.maxFiles - 1; i >= 1; i--) {
          renameIfExists(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        }
        renameIfExists(this.path, `${this.path}.1`);
      }
      this._rotations++;
    } catch (err) {
      this.fail(err);
      // Fall through: reopening the same file keeps logging going; the size check will retry rotation.
    }
    this.tryOpen();
  }

  private fail(err: unknown): void {
    this._errorCount++;
    this._lastError = err instanceof Error ? err : new Error(String(err));
    this.closeFd();
  }

  private closeFd(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    this.size = 0;
    try {
      fs.closeSync(fd);
    } catch {
      // already gone
    }
  }
}

function rmIfExists(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
