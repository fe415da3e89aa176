/**
 * What the rest of the daemon sees of a running upstream MCP server, whatever runs it: a process
 * group on this host (adapters/process/process-group.ts) or a Docker container
 * (adapters/docker/container-run.ts). The MCP client talks over `stdin`/`stdout`; the watch actor
 * listens for the exit. Stopping is not part of it: the handle's ledger entry owns the stop, so only
 * the owning actor's release can end it (docs/guarantees.md, "How every process is accounted for").
 */
import type { Readable, Writable } from 'node:stream';
import type { WardenError } from '../core/error-codes.js';
import type { ExitInfo } from './process/exit-notice.js';

type UpstreamKind = 'process' | 'container';

/**
 * A remote (url) server (adapters/remote/remote-upstream.ts): no process and no stdio; "exited" means
 * the server was lost for this session (unreachable, a broken stream, credentials refused) and
 * `exitError()` says why. Its sockets, stream and timers are ledger resources of the owning actor.
 */
export interface RemoteUpstream {
  readonly kind: 'remote';
  /** Always -1: nothing runs on this host. */
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  onExit(listener: (info: ExitInfo) => void): () => void;
  exitError(): WardenError | undefined;
  /** Secret-free identification (the URL without credentials, the transport in use). */
  describe(): Record<string, string | number>;
}

export interface Upstream {
  readonly kind: UpstreamKind;
  /** Host pid of the upstream's first process (the group leader, or the container's docker-init); -1 if unknown. */
  readonly pid: number;
  /** The MCP stream to the server (newline-delimited JSON-RPC). */
  readonly stdin: Writable;
  /** The MCP stream from the server. */
  readonly stdout: Readable;
  /** Resolves when the upstream exits. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** Called once when the upstream exits (immediately, asynchronously, if it already has). */
  onExit(listener: (info: ExitInfo) => void): () => void;
  /**
   * Once it exited: why, as a coded error worth showing instead of the MCP client's own (a container
   * names its exit code and last stderr line). Undefined while it runs, or when the kind has nothing
   * to add (a process group: the client's error already says it).
   */
  exitError(): WardenError | undefined;
  /** Secret-free identification for log lines (pid, process group or container name). */
  describe(): Record<string, string | number>;
  /** Number of stderr lines dropped by the rate limit so far. */
  stderrDropped(): number;
}
