/**
 * A container's stdio over its attach connection: one hijacked duplex connection that carries stdin
 * to the container and, multiplexed, its stdout and stderr back. `stdin`/`stdout` are the MCP stream
 * (usable before the connection exists: writes fail with EPIPE until then); stderr is drained
 * rate-limited into the logger and its last bytes kept for exit messages.
 */
import { PassThrough, Writable, type Duplex, type Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { drainStderr, type StderrDrain } from '../process/stderr-drain.js';
import { errnoOf } from '../../core/errno.js';

const STDERR_TAIL_BYTES = 2_048;
/** After the exit, how long the connection may take to deliver its last bytes before it is cut. */
const CLOSE_FLUSH_MS = 100;

export interface StdioLimits {
  stderrLinesPerSecond: number;
  stderrMaxLineBytes: number;
}

export class AttachedStdio {
  readonly stdin: Writable;
  readonly stdout: Readable;
  private readonly stdoutPT = new PassThrough();
  private readonly stderr = new PassThrough();
  private socket: Duplex | undefined;
  private drain: StderrDrain | undefined;
  private stderrTail = Buffer.alloc(0);

  constructor(private readonly log: Logger) {
    this.stdout = this.stdoutPT;
    const endWrite = () => this.endWrite();
    const connection = () => this.socket;
    this.stdin = new Writable({
      write(chunk: Buffer, _enc, cb) {
        const s = connection();
        if (!s || s.destroyed || s.writableEnded) return cb(Object.assign(new Error('container stdin is closed'), { code: 'EPIPE' }));
        s.write(chunk, (err) => cb(err ?? null));
      },
      final(cb) {
        endWrite();
        cb();
      },
      destroy(err, cb) {
        // Destroying our stdin must not cut stdout: only half-close the connection.
        endWrite();
        cb(err);
      },
    });
    const swallow = (which: string) => (err: Error) => this.log.debug({ err: err.message, code: errnoOf(err) }, `${which} error ignored`);
    this.stdin.on('error', swallow('stdin'));
    this.stdoutPT.on('error', swallow('stdout'));
  }

  /** Takes over the attach connection: demultiplexes it into stdout and the stderr drain. */
  connect(socket: Duplex, modem: Docker['modem'], limits: StdioLimits): void {
    this.socket = socket;
    modem.demuxStream(socket, this.stdoutPT, this.stderr);
    this.drain = drainStderr(this.stderr, {
      logger: this.log,
      maxLinesPerSecond: limits.stderrLinesPerSecond,
      maxLineBytes: limits.stderrMaxLineBytes,
    });
    this.stderr.on('data', (chunk: Buffer) => {
      const joined = Buffer.concat([this.stderrTail, chunk]);
      this.stderrTail = joined.length > STDERR_TAIL_BYTES ? joined.subarray(joined.length - STDERR_TAIL_BYTES) : joined;
    });
    const endOutputs = () => this.endOutputs();
    socket.on('end', endOutputs);
    socket.on('close', endOutputs);
    socket.on('error', (err: Error) => {
      this.log.debug({ err: err.message, code: errnoOf(err) }, 'attach connection error');
      endOutputs();
    });
  }

  /** stdin EOF (half-close: stdout keeps flowing). */
  endWrite(): void {
    const s = this.socket;
    try {
      if (s && !s.destroyed && !s.writableEnded) s.end();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'ending container stdin failed');
    }
  }

  /** Nobody may read stdout any more: keep it flowing so the server is not blocked writing. */
  keepFlowing(): void {
    if (this.stdoutPT.listenerCount('data') === 0 && !this.stdoutPT.destroyed) this.stdoutPT.resume();
  }

  /** Waits up to `ms` for the connection's EOF (the last output after an exit). */
  async flush(ms: number): Promise<void> {
    const s = this.socket;
    if (!s || s.destroyed || s.readableEnded) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        s.off('end', done);
        s.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      s.once('end', done);
      s.once('close', done);
    });
  }

  /** The last stderr line(s), as `; stderr: …` for an error message ('' if there were none). */
  tailText(): string {
    const lines = this.stderrTail
      .toString('utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    if (lines.length === 0) return '';
    const last = lines.slice(-2).join(' | ');
    return `; stderr: ${last.length > 300 ? `…${last.slice(-300)}` : last}`;
  }

  dropped(): number {
    return this.drain?.dropped() ?? 0;
  }

  /** The container is gone: let the connection deliver its last bytes (briefly), then drop everything. */
  close(): void {
    const finish = () => {
      this.drain?.dispose();
      this.drain = undefined;
      this.endOutputs();
      this.socket?.destroy();
    };
    const s = this.socket;
    if (!s || s.destroyed || s.readableEnded) return finish();
    const timer = setTimeout(() => {
      s.off('close', onClose);
      finish();
    }, CLOSE_FLUSH_MS);
    const onClose = () => {
      clearTimeout(timer);
      finish();
    };
    s.once('close', onClose);
  }

  private endOutputs(): void {
    if (!this.stdoutPT.writableEnded) this.stdoutPT.end();
    if (!this.stderr.writableEnded) this.stderr.end();
  }
}
