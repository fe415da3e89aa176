/**
 * The process table from `ps`, `pgrep` and `lsof` (the `portable` kind of process-table.ts): what
 * macOS offers instead of /proc, and what Linux offers too once procps and lsof are installed
 * (scripts/ensure-process-tools.sh), so the same code is tested here.
 *
 *   list            ps -axww -o pid=,ppid=,pgid=,stat=,lstart=,command=
 *   markers         the same with the environment appended (`ps axeww` on Linux, `ps -axwwE` on
 *                   macOS); the environment is what follows the plain command line
 *   group members   pgrep -g PGID, then ps -p for their states (pgrep lists zombies)
 *   listeners       lsof -nP -iTCP[:PORT] -sTCP:LISTEN -Fpn
 *
 * The tools run with a minimal environment (no MCP_WARDEN_* marker, so a ps started by a watchdog
 * never looks like a watchdog itself), `LC_ALL=C` (English month names) and `TZ=UTC0` (lstart is
 * read as UTC). A tool that is missing or times out throws E_PROCESS_TABLE_UNAVAILABLE; a process
 * that vanished between two calls is simply absent.
 *
 * Environments of other users' processes (and on macOS of some of one's own) are not shown by `ps`:
 * their `markers` are undefined, and docs/guarantees.md ("Without /proc") says what covers them.
 */
import type * as ChildProcess from 'node:child_process';
import { createRequire } from 'node:module';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import {
  MARKER_PREFIX,
  EPOCH_MS_FLOOR,
  type ListOptions,
  type ProcessEntry,
  type ProcessInfo,
  type ProcessTable,
  type SocketOwner,
} from './process-table.js';

// node:child_process is loaded when a tool first runs, not with this module: `mcp-warden stop` imports the
// process tables (current-table.ts) and, on /proc systems, never runs a tool; loading the module is ~5 ms
// of its start-up, before the daemon is signalled (docs/benchmarks.md, "Stop").
let childProcess: typeof ChildProcess | undefined;
const loadChildProcess = (): typeof ChildProcess =>
  (childProcess ??= createRequire(import.meta.url)('node:child_process') as typeof ChildProcess);

export interface PortableTableOptions {
  /** Deadline of one ps/pgrep/lsof run (setting processTableTimeoutMs). */
  timeoutMs: number;
  /** false: act as if no environment were readable (how macOS shows other users' processes); tests use it. */
  readEnvironments?: boolean;
  /** Platform whose `ps` flags to use (default: this one). */
  platform?: NodeJS.Platform;
}

const COLUMNS = 'pid=,ppid=,pgid=,stat=,lstart=,command=';
const MAX_OUTPUT_BYTES = 256 * 1024 * 1024;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
// pid ppid pgid stat, then lstart "Thu Dec  3 06:30:55 2026", then the command line (may be empty).
const LINE = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+\w{3}\s+(\w{3})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\d{4})(?: (.*))?$/;
const MARKER = new RegExp(`(?:^|\\s)(${MARKER_PREFIX}[A-Z0-9_]+)=(\\S*)`, 'g');

interface Row extends ProcessInfo {
  text: string;
}

/** One line of `ps -o pid=,ppid=,pgid=,stat=,lstart=,command=` (run with TZ=UTC0), or undefined. */
export function parsePsLine(line: string): Row | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[5]!);
  if (month < 0) return undefined;
  const startTime = Date.UTC(Number(m[10]), month, Number(m[6]), Number(m[7]), Number(m[8]), Number(m[9]));
  const text = (m[11] ?? '').trimEnd();
  const argv0 = text.split(' ')[0] ?? '';
  return {
    pid: Number(m[1]),
    ppid: Number(m[2]),
    pgid: Number(m[3]),
    state: m[4]!.charAt(0),
    startTime,
    comm: argv0.slice(argv0.lastIndexOf('/') + 1).replace(/^\[|\]$/g, ''),
    text,
  };
}

/** Our variables out of the environment text `ps e` appends to a command line (values never contain spaces). */
export function parseMarkers(envText: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of envText.matchAll(MARKER)) if (!(m[1]! in out)) out[m[1]!] = m[2]!;
  return out;
}

/** `lsof -Fpn` output → listeners (`n127.0.0.1:8080`, `n*:80`, `n[::1]:8080`). */
export function parseLsof(text: string): SocketOwner[] {
  const out: SocketOwner[] = [];
  let pid = -1;
  for (const line of text.split('\n')) {
    if (line.startsWith('p')) pid = Number(line.slice(1));
    else if (line.startsWith('n') && pid > 0) {
      const m = /^n(.*):(\d+)$/.exec(line);
      if (!m) continue;
      const address = m[1]!.replace(/^\[|\]$/g, '');
      const port = Number(m[2]);
      if (!out.some((o) => o.pid === pid && o.port === port && o.address === address)) out.push({ pid, port, address });
    }
  }
  return out;
}

function parseRows(text: string): Row[] {
  const out: Row[] = [];
  for (const line of text.split('\n')) {
    const r = parsePsLine(line);
    if (r) out.push(r);
  }
  return out;
}

function parseEnvironments(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+) (.*)$/.exec(line);
    if (m) out.set(Number(m[1]), m[2]!);
  }
  return out;
}

function toInfo(r: Row): ProcessInfo {
  return { pid: r.pid, ppid: r.ppid, pgid: r.pgid, state: r.state, startTime: r.startTime, comm: r.comm };
}

export class PortableProcessTable implements ProcessTable {
  readonly kind = 'portable' as const;
  private readonly env: Record<string, string>;

  constructor(private readonly opts: PortableTableOptions) {
    this.env = { PATH: process.env.PATH ?? '/usr/bin:/bin:/usr/sbin:/sbin', LC_ALL: 'C', TZ: 'UTC0' };
  }

  /** Runs a tool; exit status 1 with no output means "nothing matched" for ps, pgrep and lsof alike. */
  private run(cmd: string, args: string[]): string {
    const r = loadChildProcess().spawnSync(cmd, args, {
      env: this.env,
      encoding: 'utf8',
      timeout: this.opts.timeoutMs,
      maxBuffer: MAX_OUTPUT_BYTES,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return this.outcome(cmd, args, r);
  }

  /** `run` without blocking the event loop. */
  private runAsync(cmd: string, args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      loadChildProcess().execFile(
        cmd,
        args,
        { env: this.env, encoding: 'utf8', timeout: this.opts.timeoutMs, maxBuffer: MAX_OUTPUT_BYTES },
        (err, stdout, stderr) => {
          const code = (err as NodeJS.ErrnoException | null)?.code;
          const timedOut = err !== null && (err as { killed?: boolean }).killed === true;
          const spawnError =
            typeof code === 'string' || timedOut
              ? Object.assign(new Error(err!.message), { code: timedOut ? 'ETIMEDOUT' : code })
              : undefined;
          try {
            resolve(
              this.outcome(cmd, args, { error: spawnError, status: err ? (typeof code === 'number' ? code : 1) : 0, stdout, stderr }),
            );
          } catch (e) {
            reject(e);
          }
        },
      );
    });
  }

  private outcome(cmd: string, args: string[], r: { error?: Error; status: number | null; stdout: string; stderr: string }): string {
    if (r.error) {
      const why =
        (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? `did not finish within ${this.opts.timeoutMs} ms` : r.error.message;
      throw new WardenError(ErrorCodes.PROCESS_TABLE_UNAVAILABLE, `${cmd} ${why} (processTable "portable" needs ps, pgrep and lsof)`, {
        command: cmd,
      });
    }
    if (r.status !== 0 && r.stdout.trim() !== '') return r.stdout;
    if (r.status !== 0 && r.status !== 1) {
      throw new WardenError(
        ErrorCodes.PROCESS_TABLE_UNAVAILABLE,
        `${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || `exit ${r.status}`}`,
        {
          command: cmd,
        },
      );
    }
    return r.stdout;
  }

  private rowsArgs(select: string[]): string[] {
    return [...select, '-ww', '-o', COLUMNS];
  }

  private rows(select: string[]): Row[] {
    return parseRows(this.run('ps', this.rowsArgs(select)));
  }

  /** ps arguments listing pid and command line with the environment appended (undefined: environments are not read). */
  private environmentArgs(pids?: number[]): string[] | undefined {
    if (this.opts.readEnvironments === false) return undefined;
    const darwin = (this.opts.platform ?? process.platform) === 'darwin';
    // procps takes the BSD `e` (environment) without a dash; macOS spells it -E.
    const select = pids ? ['-p', pids.join(',')] : darwin ? ['-ax'] : ['ax'];
    return darwin ? [...select, '-wwE', '-o', 'pid=,command='] : [...select, 'eww', '-o', 'pid=,command='];
  }

  /** pid → command line with the environment appended, for every process whose environment ps shows. */
  private environments(pids?: number[]): Map<number, string> {
    const args = this.environmentArgs(pids);
    return args ? parseEnvironments(this.run('ps', args)) : new Map();
  }

  private withMarkers(envs: Map<number, string>, e: ProcessEntry, r: Row): void {
    const full = envs.get(r.pid);
    // The environment is what ps printed after the plain command line; nothing after it: not shown.
    if (full === undefined || !full.startsWith(r.text)) return;
    const rest = full.slice(r.text.length);
    if (rest.trim() !== '') e.markers = parseMarkers(rest);
  }

  list(opts: ListOptions = {}): ProcessEntry[] {
    return this.entries(this.rows(['-ax']), opts.markers ? this.environments() : undefined, opts);
  }

  async listAsync(opts: ListOptions = {}): Promise<ProcessEntry[]> {
    const envArgs = opts.markers ? this.environmentArgs() : undefined;
    const [rowText, envText] = await Promise.all([
      this.runAsync('ps', this.rowsArgs(['-ax'])),
      envArgs ? this.runAsync('ps', envArgs) : Promise.resolve(undefined),
    ]);
    const envs = opts.markers ? (envText === undefined ? new Map<number, string>() : parseEnvironments(envText)) : undefined;
    return this.entries(parseRows(rowText), envs, opts);
  }

  private entries(rows: Row[], envs: Map<number, string> | undefined, opts: ListOptions): ProcessEntry[] {
    return rows.map((r) => {
      const e: ProcessEntry = toInfo(r);
      if (opts.command) e.command = r.text === '' ? [] : r.text.split(' ');
      if (envs) this.withMarkers(envs, e, r);
      return e;
    });
  }

  get(pid: number): ProcessInfo | undefined {
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const r = this.rows(['-p', String(pid)]).find((x) => x.pid === pid);
    return r && toInfo(r);
  }

  groupMembers(pgid: number): ProcessInfo[] {
    if (!Number.isInteger(pgid) || pgid <= 0) return [];
    const pids = this.run('pgrep', ['-g', String(pgid)])
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
    if (pids.length === 0) return [];
    return this.rows(['-p', pids.join(',')])
      .filter((r) => r.pgid === pgid && r.state !== 'Z' && r.state !== 'X')
      .map(toInfo);
  }

  commandOf(pid: number): string[] {
    const r = this.rows(['-p', String(pid)]).find((x) => x.pid === pid);
    return r && r.text !== '' ? r.text.split(' ') : [];
  }

  markersOf(pid: number): Record<string, string> | undefined {
    const r = this.rows(['-p', String(pid)]).find((x) => x.pid === pid);
    if (!r) return undefined;
    const e: ProcessEntry = toInfo(r);
    this.withMarkers(this.environments([pid]), e, r);
    return e.markers;
  }

  tcpListeners(port?: number): SocketOwner[] {
    return parseLsof(this.run('lsof', ['-nP', '-w', port === undefined ? '-iTCP' : `-iTCP:${port}`, '-sTCP:LISTEN', '-Fpn']));
  }

  startTimeMatches(observed: ProcessInfo, recorded: number): boolean | undefined {
    // A /proc tick count cannot be turned into wall-clock time without /proc: unknown.
    if (recorded < EPOCH_MS_FLOOR) return undefined;
    return observed.startTime === recorded;
  }
}
