/**
 * The process table: the one way mcp-warden looks at other processes (listing, process-group
 * membership, our environment markers, command lines, who listens on a TCP port). Two
 * implementations, chosen at run time (docs/guarantees.md, "Without /proc"):
 *
 *   - `proc` (proc-table.ts): reads Linux /proc directly;
 *   - `portable` (portable-table.ts): runs `ps`, `pgrep` and `lsof`, which macOS ships and Linux can
 *     install; environments come from `ps e`/`ps -E`, which may hide other users' processes.
 *
 * `auto` means `proc` where /proc/self/stat exists, else `portable`. The setting `processTable`
 * forces one; the environment variable MCP_WARDEN_PROCESS_TABLE is what `auto` means when set, so a
 * whole test run (and the watchdogs and daemons it starts) can be switched to the portable table.
 *
 * Every read tolerates processes vanishing mid-scan or being unreadable: such a process is skipped,
 * never an error. Only a missing tool (no `ps`) is an error, with code E_PROCESS_TABLE_UNAVAILABLE.
 */
import { existsSync } from 'node:fs';

export type ProcessTableKind = 'proc' | 'portable';
export type ProcessTableChoice = 'auto' | ProcessTableKind;
export const PROCESS_TABLE_CHOICES: readonly ProcessTableChoice[] = ['auto', 'proc', 'portable'];
/** Env var: what `auto` means (used by tests and CI to force the portable table everywhere). */
export const ENV_PROCESS_TABLE = 'MCP_WARDEN_PROCESS_TABLE';
/** The environment variables the tables report (`markers`): ours, nothing else. */
export const MARKER_PREFIX = 'MCP_WARDEN_';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  /** One-letter state: R, S, D, Z (zombie), T, t, X, I, U (macOS), ... */
  state: string;
  /**
   * Identifies one incarnation of a pid. proc: clock ticks since boot (/proc/<pid>/stat field 22);
   * portable: start in ms since the epoch, whole seconds (`ps -o lstart`). Compare with
   * `table.startTimeMatches`, which knows both units.
   */
  startTime: number;
  /** The executable's short name (for reports when the command line is unreadable). */
  comm: string;
}

export interface ProcessEntry extends ProcessInfo {
  /** The command line (argv; the portable table splits `ps`'s text at spaces). Only with `{ command: true }`. */
  command?: string[];
  /**
   * The MCP_WARDEN_* variables of the environment the process was started with. Only with
   * `{ markers: true }`; undefined when that environment could not be read (another user's process,
   * or macOS hiding it): docs/guarantees.md says what stands in for it then.
   */
  markers?: Record<string, string>;
}

export interface ListOptions {
  command?: boolean;
  markers?: boolean;
  /**
   * With `markers`: read them only for the processes this accepts (the others get none). A table that
   * reads every environment at once anyway (portable-table.ts) may ignore it.
   */
  markersOf?: (p: ProcessInfo) => boolean;
  /**
   * Pids the caller does not need listed: a table that reads one process at a time (proc-table.ts)
   * skips them unread; another may list them anyway.
   */
  skip?: (pid: number) => boolean;
}

/** A process with a listening TCP socket. */
export interface SocketOwner {
  pid: number;
  port: number;
  /** Local address as the tool shows it (`127.0.0.1`, `::`, `*`). */
  address: string;
}

export interface ProcessTable {
  readonly kind: ProcessTableKind;
  /** Every process (zombies included, flagged by `state`). */
  list(opts?: ListOptions): ProcessEntry[];
  /**
   * The same without blocking the event loop while a tool runs (the portable table): for the big
   * scans of a daemon that must keep refreshing its data-dir lock meanwhile (the startup reap).
   */
  listAsync(opts?: ListOptions): Promise<ProcessEntry[]>;
  /** One process, or undefined when it does not exist (or cannot be seen). */
  get(pid: number): ProcessInfo | undefined;
  /** `get` read off the event loop, where the table can (the group mark's leader start time, process-group.ts). */
  getAsync?(pid: number): Promise<ProcessInfo | undefined>;
  /** Live (non-zombie) members of process group `pgid`; reads no more than that group where the system allows. */
  groupMembers(pgid: number): ProcessInfo[];
  /** The command line of one process ([] when gone or unreadable). */
  commandOf(pid: number): string[];
  /** MCP_WARDEN_* variables of one process (undefined when gone or unreadable). */
  markersOf(pid: number): Record<string, string> | undefined;
  /** Processes listening on TCP `port` (every listener when `port` is undefined). */
  tcpListeners(port?: number): SocketOwner[];
  /**
   * Is `observed` the incarnation whose start time was recorded as `recorded` (maybe by the other
   * table)? undefined when the units cannot be compared (a /proc tick count read by the portable table).
   */
  startTimeMatches(observed: ProcessInfo, recorded: number): boolean | undefined;
}

/** Start times at or above this are ms since the epoch (portable); below, clock ticks since boot (proc): 540 years of uptime apart. */
export const EPOCH_MS_FLOOR = 1e12;

export function isDead(p: Pick<ProcessInfo, 'state'>): boolean {
  return p.state === 'Z' || p.state === 'X';
}

/** Our variables out of a full environment. */
export function pickMarkers(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith(MARKER_PREFIX)) out[k] = v;
  return out;
}

/** The choice `auto` resolves to: MCP_WARDEN_PROCESS_TABLE when set, else proc where /proc exists. */
export function resolveProcessTableKind(choice: ProcessTableChoice = 'auto', env: NodeJS.ProcessEnv = process.env): ProcessTableKind {
  if (choice !== 'auto') return choice;
  const forced = env[ENV_PROCESS_TABLE];
  if (forced === 'proc' || forced === 'portable') return forced;
  return existsSync('/proc/self/stat') ? 'proc' : 'portable';
}
