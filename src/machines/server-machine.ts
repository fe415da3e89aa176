/**
 * The lifecycle of one upstream server. Statechart only: no I/O. The effects (launch, watch,
 * release, audit, force, hand-over) are actor placeholders here and real implementations are
 * supplied with `machine.provide({ actors })` by the daemon (src/actors/).
 *
 *   starting ─┬─ check ─► launching   (halted / needsAuth: own nothing; wait for RESTART)
 *             ├─ launching ──ok──► running ⇄ quarantined      (APPROVE / QUARANTINE)
 *             │       │ error / init timeout           │ crash (UPSTREAM_EXITED)
 *             │       └──────────────┬─────────────────┘ STOP / RESTART from anywhere
 *             └─ backoff ◄─┐         ▼
 *                          │     stopping ── release everything the actor owns (polite escalation), then audit
 *                          │         │ └──── a STOP, verified empty by that audit ────► stopped (final)
 *                          │         ▼  (something remains, or the release failed or ran out of time)
 *                          │     reaping ─ auditing ⇄ forcing ⇄ backoff ─► handingOver
 *                          │         │ (ledger slice verified empty, by stopping's audit or reaping's)
 *                          └─────────┴──► reaping.settled ──► stopped (final) | starting.check | starting.backoff
 *                                                               | starting.halted | starting.needsAuth
 *
 *   needsAuth: a remote server answered 401 and no usable tokens are left (E_REMOTE_NEEDS_AUTH, at
 *   launch or while running). Not retried on its own (no retry storm against an authorization
 *   server); `mcp-warden auth login` stores tokens and sends RESTART.
 *   Retry-After: a launch error carrying `detail.retryAfterMs` (a remote server's 429/503) makes the
 *   next restart delay at least that long.
 *
 *   DEADLINE (the supervisor's shutdown budget is spent), from any state but handingOver/stopped:
 *     ──► reaping.handingOver: whatever is still owned goes to the daemon's reaper at once, then the
 *     audit finds the slice empty and the actor reaches `stopped` the ordinary way.
 *
 * While running/quarantined the context holds the live upstream session (the launch actor's
 * output); every transition from there into `stopping` clears it, so it never outlives the state that uses it.
 *
 * The one invariant: `stopped` is entered only right after an audit found the ledger slice empty: the
 * release's own audit in `stopping` (a stop goes straight on; a restart or recovery passes through
 * `reaping.settled` to choose its way back), or `reaping.auditing` (then through `reaping.settled`).
 * The release audits in the same actor: one invoked actor per ordinary stop instead of two, which
 * was a fifth of a 500-server shutdown's actor work.
 * Nothing in here throws: guards and assigns are total over their inputs.
 */
import { assign, enqueueActions, fromCallback, fromPromise, setup } from 'xstate';
import { backoffDelay, type Settings } from '../core/settings.js';
import { ErrorCodes, toErrorInfo, type ErrorCode, type ErrorInfo } from '../core/error-codes.js';
// Types only (erased at build): the statechart keeps the session, it never calls into it.
import type { UpstreamConnection } from '../adapters/mcp/upstream-client.js';
import type { ExitInfo } from '../adapters/process/exit-notice.js';

/** Ledger owner id and systemId of a server's actor (its XState id is a slot number, supervisor-machine.ts). */
export const serverActorId = (name: string): string => `server:${name}`;

/** The server name of a `server:<name>` actor id; undefined for any other id. */
export function nameOfActorId(id: unknown): string | undefined {
  return typeof id === 'string' && id.startsWith('server:') ? id.slice('server:'.length) : undefined;
}

export type ServerSettings = Pick<
  Settings,
  | 'initTimeoutMs'
  | 'restartBackoffInitialMs'
  | 'restartBackoffMaxMs'
  | 'restartBackoffFactor'
  | 'restartIntensityMax'
  | 'restartIntensityWindowMs'
  | 'stopEofGraceMs'
  | 'stopTermGraceMs'
  | 'stopKillGraceMs'
  | 'reapMaxAttempts'
  | 'reapBackoffInitialMs'
  | 'reapBackoffMaxMs'
  | 'dockerStopGraceSeconds'
>;

/** A tool as the upstream listed it (schemas untouched). */
export interface UpstreamToolInfo {
  name: string;
  description?: string;
  inputSchema: Record<string, unknown>;
  [key: string]: unknown;
}

/** A prompt or resource template as the upstream listed it, passed on unchanged. */
export type UpstreamItem = Record<string, unknown>;

/** The lists the integrity check covers besides tools; `undefined` = not fetched (the fetch failed). */
export interface OfferedLists {
  prompts?: UpstreamItem[];
  resourceTemplates?: UpstreamItem[];
}

/**
 * The live upstream of a launched server (process group or container, plus its MCP client), made
 * by the launch actor (src/actors/launch-upstream.ts) and kept in context while it is usable. The
 * ledger entry the launch acquired still owns its release; this is only the way to reach it.
 */
export interface UpstreamSession {
  readonly name: string;
  /** Only what the watch actor needs of the process-group or container handle. */
  readonly handle: { readonly pid: number; onExit(listener: (info: ExitInfo) => void): () => void; exitError?(): unknown };
  readonly connection: UpstreamConnection;
  /** A small summary, so snapshots stay serialisable (Stately inspector, JSON logs). */
  toJSON(): UpstreamSessionSummary;
}

interface UpstreamSessionSummary {
  name: string;
  pid: number;
  upstream: string | null;
}

export interface ServerMachineInput {
  name: string;
  /** A remote (url) entry (no process; adapters/remote/). */
  remote: boolean;
  quarantined: boolean;
  settings: ServerSettings;
}

type StopIntent = 'stop' | 'restart' | 'recover' | 'auth';

/**
 * What a server actor is given at its start and never changes (one nested object, see ServerContext).
 */
export interface ServerSpec {
  /** Ledger owner id and systemId. */
  owner: string;
  /** A remote (url) entry (no process; adapters/remote/). */
  remote: boolean;
  settings: ServerSettings;
}

/** The live upstream's facts while running/quarantined (set at launch, cleared by the transition into `stopping`). */
export interface UpInfo {
  pid: number;
  serverInfo: { name: string; version: string } | null;
  /** Since when the server is in running/quarantined (ms). */
  upSince: number;
}

/** The bookkeeping of one reaping (reset on entering it). */
export interface ReapInfo {
  /** Forced-removal attempts in the current reaping. */
  attempt: number;
  /** Resources still held when reaping last audited. */
  remaining: number;
}

/**
 * Kept to few top-level keys on purpose: xstate builds every new context with
 * `Object.assign({}, context, update)`, and V8 turns an object built that way with ~20 keys into a
 * slow dictionary-mode object (an assign then costs ~20x more). Fields that change together or never
 * change are grouped into small nested objects instead (spec, up, reap).
 */
export interface ServerContext {
  name: string;
  /** Never changes after the start. */
  spec: ServerSpec;
  quarantined: boolean;
  /** Why we are stopping: finish, restart on request, or recover from a crash. */
  intent: StopIntent;
  /** Times of crash-recovery restarts inside the intensity window (for backoff and the limit). */
  restartTimes: number[];
  /** Restart attempt that the current backoff/launch belongs to (0 = first start). */
  attempt: number;
  lastError: ErrorInfo | null;
  /** The launched upstream's pid, serverInfo and start time while running/quarantined; null otherwise. */
  up: UpInfo | null;
  tools: UpstreamToolInfo[];
  /**
   * The prompts and resource templates as checked with the tools (fetched at launch and after the
   * upstream's list_changed): the endpoint serves these lists, never ones fetched later unchecked.
   */
  prompts: UpstreamItem[];
  resourceTemplates: UpstreamItem[];
  /**
   * Why the server was (re-)quarantined by the integrity check; in `running` (quarantineScope
   * "tool") the changed tools withheld alone; empty otherwise.
   */
  toolChanges: ToolChangeInfo[];
  /** The live upstream while running/quarantined; null otherwise. */
  session: UpstreamSession | null;
  reap: ReapInfo;
  /** The supervisor's shutdown budget is spent: hand everything to the reaper, don't wait. */
  deadline: boolean;
  /** The last failure's Retry-After (ms): the next restart delay is at least this; null when none. */
  retryAfterMs: number | null;
}

/** A fetched tool that differs from its approved fingerprint (or was never approved). */
export interface ToolChangeInfo {
  tool: string;
  /** Absent for a tool; a prompt (by name) or resource template (by uriTemplate) otherwise. */
  item?: 'prompt' | 'resourceTemplate';
  kind: 'changed' | 'added';
  fields: string[];
  summary: string;
}

/**
 * The integrity check of a fetched tool list against the approved record (the registry's
 * `checkTools`, src/daemon/server-registry.ts), carried by a launch result or a TOOLS_UPDATED event.
 */
export interface ToolCheck {
  /** Tools that differ from their approved fingerprints (or were never approved). */
  toolChanges?: ToolChangeInfo[];
  /**
   * What a change withholds (setting quarantineScope): `server` (the default) quarantines the whole
   * server; `tools` withholds the changed tools alone and keeps a running server running.
   */
  withhold?: 'server' | 'tools';
  /** Quarantine the whole server for this reason, whatever changed (e.g. E_APPROVAL_MISSING). */
  quarantine?: { code: ErrorCode; message: string };
}

export interface LaunchOutput extends ToolCheck, OfferedLists {
  pid: number;
  tools: UpstreamToolInfo[];
  serverInfo?: { name: string; version: string };
  /** The connection to route calls over (its release is in the ledger already). */
  session: UpstreamSession | null;
}

export interface AuditOutput {
  remaining: number;
}

export type ServerEvent =
  | { type: 'STOP' }
  | { type: 'RESTART' }
  | { type: 'APPROVE' }
  | { type: 'QUARANTINE' }
  /** `error`: why the upstream was lost, when known (E_UPSTREAM_PROTOCOL, E_REMOTE_NEEDS_AUTH, …; read by toErrorInfo). */
  | { type: 'UPSTREAM_EXITED'; code: number | null; signal: string | null; error?: unknown }
  | ({ type: 'TOOLS_UPDATED'; tools: UpstreamToolInfo[] } & OfferedLists & ToolCheck)
  /** From the supervisor when its shutdown budget is spent. */
  | { type: 'DEADLINE' }
  /** From the server's own deadline timers (`timer` actor, releaseWithDeadline): launch took too long / stopping ran over its budget. */
  | { type: 'INIT_TIMEOUT' }
  | { type: 'STOP_DEADLINE' }
  /** From stopping's release (releaseWithDeadline): released, with the audit it made (`{ remaining }`) if it made one. */
  | { type: 'RELEASED'; output?: AuditOutput }
  | { type: 'RELEASE_FAILED'; error: unknown };

type OwnerInput = { name: string; owner: string };
/** What stopping's release is given: whose resources, and stopping's deadline (ms on the system's clock). */
export type ReleaseInput = OwnerInput & { deadlineMs: number };
/** Launching's deadline: after `ms` on the actor system's clock, the timer sends `event` to the server actor (stopping's is releaseWithDeadline's). */
export type TimerInput = { ms: number; event: 'INIT_TIMEOUT' };
export type WatchInput = OwnerInput & {
  session: UpstreamSession | null;
  /** The lists as last checked, so a refresh of one sends all of them with its check. */
  tools?: UpstreamToolInfo[];
  prompts?: UpstreamItem[];
  resourceTemplates?: UpstreamItem[];
};

/** Tool changes carried by a launch result or a TOOLS_UPDATED event (never throws). */
function changesIn(event: unknown): ToolChangeInfo[] {
  const e = event as { output?: { toolChanges?: unknown }; toolChanges?: unknown };
  const list = e.output?.toolChanges ?? e.toolChanges;
  return Array.isArray(list) ? (list as ToolChangeInfo[]) : [];
}

/** The check carried by a launch result or a TOOLS_UPDATED event (never throws). */
function checkIn(event: unknown): ToolCheck {
  const e = event as { output?: ToolCheck } & ToolCheck;
  return e.output && typeof e.output === 'object' ? e.output : e;
}

function reasonIn(event: unknown): ToolCheck['quarantine'] {
  const q = checkIn(event).quarantine;
  return q && typeof q.code === 'string' && typeof q.message === 'string' ? q : undefined;
}

/** The error of an error/exit event is E_REMOTE_NEEDS_AUTH (never throws). */
function isNeedsAuth(event: unknown): boolean {
  const err = (event as { error?: { code?: unknown } }).error;
  return typeof err === 'object' && err !== null && err.code === ErrorCodes.REMOTE_NEEDS_AUTH;
}

/** `detail.retryAfterMs` of an error/exit event's error, if it is a sane number (never throws). */
function retryAfterOf(event: unknown): number | null {
  const v = (event as { error?: { detail?: { retryAfterMs?: unknown } } }).error?.detail?.retryAfterMs;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
}

/** An audit's output (in a release's RELEASED or an audit's done event) says nothing remains (never throws). */
function verifiedEmpty(event: unknown): boolean {
  const out = (event as { output?: AuditOutput }).output;
  return typeof out?.remaining === 'number' && out.remaining === 0;
}

/** Safety net over the adapter's own escalation: stopping never waits longer than its budget. */
function stopDeadlineMs(settings: ServerSettings): number {
  return (
    settings.stopEofGraceMs +
    Math.max(settings.stopTermGraceMs, (settings.dockerStopGraceSeconds ?? 0) * 1_000) +
    settings.stopKillGraceMs +
    1_000
  );
}

/** The live upstream's fields once it is gone (clearRuntime, stopLive). */
const RUNTIME_CLEARED = {
  up: null,
  tools: [] as UpstreamToolInfo[],
  prompts: [] as UpstreamItem[],
  resourceTemplates: [] as UpstreamItem[],
  session: null,
} satisfies Partial<ServerContext>;

const notProvided = (what: string) => () => Promise.reject(new Error(`${what} not provided`));

/**
 * Stopping's one invoked actor: runs `release` (release, then audit: src/actors/teardown-actors.ts)
 * and holds stopping's deadline on the system's clock (SimulatedClock in tests). It reports once:
 * RELEASED (with the audit, if the release made one), RELEASE_FAILED, or STOP_DEADLINE; its cleanup
 * drops the timer, and a result that comes after it is ignored (as a stopped promise actor's was).
 * One callback actor where a promise actor and a timer actor were: per stopping server two actors
 * fewer to create, start and stop, two snapshots fewer, and no AbortController (Node 20 makes each
 * signal slowly), a sixth of what the actor system did for each server of a 500-server stop.
 */
export function releaseWithDeadline(release: (input: OwnerInput) => Promise<AuditOutput | void>) {
  return fromCallback<ServerEvent, ReleaseInput>(({ input, sendBack, system }) => {
    const clock = system._clock;
    let live = true;
    const handle = clock.setTimeout(() => {
      if (!live) return;
      live = false;
      sendBack({ type: 'STOP_DEADLINE' });
    }, input.deadlineMs);
    const report = (event: ServerEvent) => {
      if (!live) return;
      live = false;
      clock.clearTimeout(handle);
      sendBack(event);
    };
    let released: Promise<AuditOutput | void>;
    try {
      released = release({ name: input.name, owner: input.owner });
    } catch (error) {
      released = Promise.reject(error);
    }
    released.then(
      (output) => report(output ? { type: 'RELEASED', output } : { type: 'RELEASED' }),
      (error: unknown) => report({ type: 'RELEASE_FAILED', error }),
    );
    return () => {
      if (!live) return;
      live = false;
      clock.clearTimeout(handle);
    };
  });
}

/** Build the machine. `now` is injected (SimulatedClock in tests) so restart times are controllable. */
/** What the watch of a live upstream (running or quarantined) is given. */
function watchInput(context: ServerContext): WatchInput {
  return {
    name: context.name,
    owner: context.spec.owner,
    session: context.session,
    tools: context.tools,
    prompts: context.prompts,
    resourceTemplates: context.resourceTemplates,
  };
}

/** What a successful launch puts in context (markLaunched). */
function launchedFields(event: unknown, now: () => number): Partial<ServerContext> {
  const out = (event as { output: LaunchOutput }).output;
  return {
    up: { pid: out.pid, serverInfo: out.serverInfo ?? null, upSince: now() },
    tools: Array.isArray(out.tools) ? out.tools : [],
    prompts: Array.isArray(out.prompts) ? out.prompts : [],
    resourceTemplates: Array.isArray(out.resourceTemplates) ? out.resourceTemplates : [],
    session: out.session ?? null,
    retryAfterMs: null,
  };
}

/** quarantineScope "tool": the changed tools are withheld alone (the catalog leaves them out); setWithheld. */
function withheldFields(context: ServerContext, event: unknown, now: () => number): Partial<ServerContext> {
  const changes = changesIn(event);
  if (changes.length > 0) {
    const message = `withheld until approved: ${changes.map((c) => c.summary).join('\n')}`;
    return { toolChanges: changes, lastError: { code: ErrorCodes.TOOLS_CHANGED, message, at: now() } };
  }
  const none = context.toolChanges.length === 0 ? context.toolChanges : [];
  return context.lastError?.code === ErrorCodes.TOOLS_CHANGED ? { toolChanges: none, lastError: null } : { toolChanges: none };
}

export function createServerMachine(deps: { now: () => number }) {
  const now = () => {
    try {
      return deps.now();
    } catch {
      return 0;
    }
  };
  const recentRestarts = (c: ServerContext): number[] => {
    const t = now();
    return c.restartTimes.filter((x) => t - x < c.spec.settings.restartIntensityWindowMs);
  };

  return setup({
    types: {
      context: {} as ServerContext,
      events: {} as ServerEvent,
      input: {} as ServerMachineInput,
    },
    actors: {
      launchUpstream: fromPromise<LaunchOutput, OwnerInput>(notProvided('launchUpstream')),
      watchUpstream: fromCallback<ServerEvent, WatchInput>(() => undefined),
      /** Releases, then audits: `{ remaining }` as auditOwned's; without an output `reaping` audits. Holds stopping's deadline. */
      releaseOwned: releaseWithDeadline(notProvided('releaseOwned')),
      auditOwned: fromPromise<AuditOutput, OwnerInput>(notProvided('auditOwned')),
      forceRelease: fromPromise<void, OwnerInput & { attempt: number }>(notProvided('forceRelease')),
      handOver: fromPromise<void, OwnerInput>(notProvided('handOver')),
      // The deadline of launching (stopping's is held by its release, releaseWithDeadline), as an actor
      // on the system's clock (SimulatedClock in tests) instead of an `after` delay: xstate's scheduler keeps every pending delay of the whole
      // system in one table and each actor stop scans all of it (cancelAll), so 500 servers each holding
      // an init or stop deadline made every launch/release/audit completion cost O(servers). A timer
      // actor's handle lives only in its own cleanup.
      timer: fromCallback<ServerEvent, TimerInput>(({ input, sendBack, system }) => {
        const clock = system._clock;
        const handle = clock.setTimeout(() => sendBack({ type: input.event }), input.ms);
        return () => clock.clearTimeout(handle);
      }),
    },
    delays: {
      restartDelay: ({ context }) =>
        Math.max(
          context.retryAfterMs ?? 0,
          backoffDelay(
            Math.max(1, context.attempt),
            context.spec.settings.restartBackoffInitialMs,
            context.spec.settings.restartBackoffMaxMs,
            context.spec.settings.restartBackoffFactor,
          ),
        ),
      reapDelay: ({ context }) =>
        backoffDelay(Math.max(1, context.reap.attempt), context.spec.settings.reapBackoffInitialMs, context.spec.settings.reapBackoffMaxMs),
    },
    guards: {
      needsAuth: ({ event }) => isNeedsAuth(event),
      intentAuth: ({ context }) => context.intent === 'auth',
      isQuarantined: ({ context }) => context.quarantined,
      // The whole server goes (back) to quarantine: a reason to, or a change in server scope (or in
      // a server that is quarantined anyway). In tool scope a running server keeps running.
      quarantinesServer: ({ context, event }) =>
        reasonIn(event) !== undefined || (changesIn(event).length > 0 && (checkIn(event).withhold !== 'tools' || context.quarantined)),
      nothingRemains: ({ event }) => verifiedEmpty(event),
      stoppedForGood: ({ context, event }) => context.intent === 'stop' && verifiedEmpty(event),
      // Exactly at the limit: hand over once; after that keep forcing on the capped backoff.
      handOverDue: ({ context }) => context.reap.attempt === context.spec.settings.reapMaxAttempts,
      hasReapAttempted: ({ context }) => context.reap.attempt > 0,
      deadlinePassed: ({ context }) => context.deadline,
      intentStop: ({ context }) => context.intent === 'stop',
      intentRestart: ({ context }) => context.intent === 'restart',
      crashLoop: ({ context }) => recentRestarts(context).length + 1 > context.spec.settings.restartIntensityMax,
    },
    actions: {
      recordError: assign({
        lastError: ({ event }) => toErrorInfo((event as { error?: unknown }).error, ErrorCodes.INIT_FAILED, now()),
        retryAfterMs: ({ event }) => retryAfterOf(event),
      }),
      recordInitTimeout: assign({
        lastError: ({ context }) => ({
          code: ErrorCodes.INIT_TIMEOUT,
          message: `no initialize response within ${context.spec.settings.initTimeoutMs} ms`,
          at: now(),
        }),
      }),
      recordExit: assign({
        lastError: ({ event }) => {
          const e = event as Extract<ServerEvent, { type: 'UPSTREAM_EXITED' }>;
          // A remote server that was lost says why (unreachable, credentials refused, …).
          if (e.error !== undefined && e.error !== null) return toErrorInfo(e.error, ErrorCodes.UPSTREAM_EXITED, now());
          const how = e.signal ? `signal ${e.signal}` : `code ${e.code}`;
          return { code: ErrorCodes.UPSTREAM_EXITED, message: `upstream exited (${how})`, at: now() };
        },
        retryAfterMs: ({ event }) => retryAfterOf(event),
      }),
      recordCrashLoop: assign({
        lastError: ({ context }) => ({
          code: ErrorCodes.CRASH_LOOP,
          message: `more than ${context.spec.settings.restartIntensityMax} restarts within ${context.spec.settings.restartIntensityWindowMs} ms; waiting for an explicit restart`,
          at: now(),
        }),
      }),
      recordReleaseFailure: assign({
        lastError: ({ event }) => toErrorInfo((event as { error?: unknown }).error, ErrorCodes.STOP_FAILED, now()),
      }),
      recordReapFailure: assign({
        lastError: ({ event }) => toErrorInfo((event as { error?: unknown }).error, ErrorCodes.REAP_FAILED, now()),
      }),
      // Only when it changes: every assign is a new snapshot (context copy, state value), and a first
      // stop finds the intent 'stop' already (a fifth of a stopping transition's snapshots).
      intendStop: enqueueActions(({ context, enqueue }) => {
        if (context.intent !== 'stop') enqueue.assign({ intent: 'stop' as StopIntent });
      }),
      markDeadline: assign({ intent: 'stop' as StopIntent, deadline: true }),
      intendRestart: assign({ intent: 'restart' as StopIntent }),
      intendRecover: assign({ intent: 'recover' as StopIntent }),
      intendAuth: assign({ intent: 'auth' as StopIntent }),
      markLaunched: assign(({ event }) => launchedFields(event, now)),
      // The ordinary launch (→ running): markLaunched and setWithheld in one assign, one snapshot fewer per start.
      markRunning: assign(({ context, event }) => ({ ...launchedFields(event, now), ...withheldFields(context, event, now) })),
      // Leaving running/quarantined for `stopping`: the live upstream's fields go with the state that used
      // them. A stop sets its intent in the same assign (one snapshot instead of an assign and a check).
      clearRuntime: assign(RUNTIME_CLEARED),
      stopLive: assign({ ...RUNTIME_CLEARED, intent: 'stop' as StopIntent }),
      // The same array when a list was not refetched: the catalog compares references (list_changed).
      setTools: assign(({ event, context }) => {
        const e = event as Extract<ServerEvent, { type: 'TOOLS_UPDATED' }>;
        return {
          tools: Array.isArray(e.tools) ? e.tools : context.tools,
          prompts: Array.isArray(e.prompts) ? e.prompts : context.prompts,
          resourceTemplates: Array.isArray(e.resourceTemplates) ? e.resourceTemplates : context.resourceTemplates,
        };
      }),
      // What the integrity check said is answered by the approval; other errors stay visible.
      approve: assign(({ context }) => ({
        quarantined: false,
        // The same empty array when nothing was withheld: the catalog compares references (list_changed).
        toolChanges: context.toolChanges.length === 0 ? context.toolChanges : ([] as ToolChangeInfo[]),
        lastError:
          context.lastError?.code === ErrorCodes.TOOLS_CHANGED || context.lastError?.code === ErrorCodes.APPROVAL_MISSING
            ? null
            : context.lastError,
      })),
      recordToolChanges: assign(({ event }) => {
        const changes = changesIn(event);
        const reason = reasonIn(event);
        if (changes.length === 0 && !reason) return {};
        return {
          quarantined: true,
          toolChanges: changes,
          lastError: {
            code: reason?.code ?? ErrorCodes.TOOLS_CHANGED,
            message: reason?.message ?? changes.map((c) => c.summary).join('\n'),
            at: now(),
          },
        } satisfies Partial<ServerContext>;
      }),
      // quarantineScope "tool": the changed tools are withheld alone (the catalog leaves them out).
      setWithheld: assign(({ context, event }) => withheldFields(context, event, now)),
      quarantine: assign({ quarantined: true }),
      resetRestarts: assign({ restartTimes: [] as number[], attempt: 0, lastError: null, retryAfterMs: null }),
      countRestart: assign(({ context }) => {
        const recent = recentRestarts(context);
        return { restartTimes: [...recent, now()], attempt: recent.length + 1 };
      }),
      // Likewise: an ordinary stop passes through reaping (to `settled`) with nothing to reset.
      resetReap: enqueueActions(({ context, enqueue }) => {
        if (context.reap.attempt !== 0 || context.reap.remaining !== 0) enqueue.assign({ reap: { attempt: 0, remaining: 0 } });
      }),
      incrementReap: assign({ reap: ({ context }) => ({ attempt: context.reap.attempt + 1, remaining: context.reap.remaining }) }),
      recordRemaining: assign({
        reap: ({ context, event }) => {
          const out = (event as { output?: AuditOutput }).output;
          return { attempt: context.reap.attempt, remaining: typeof out?.remaining === 'number' ? out.remaining : 0 };
        },
      }),
    },
  }).createMachine({
    id: 'server',
    context: ({ input }) => ({
      name: input.name,
      spec: { owner: serverActorId(input.name), remote: input.remote, settings: input.settings },
      quarantined: input.quarantined,
      intent: 'stop',
      restartTimes: [],
      attempt: 0,
      lastError: null,
      up: null,
      tools: [],
      prompts: [],
      resourceTemplates: [],
      toolChanges: [],
      session: null,
      reap: { attempt: 0, remaining: 0 },
      deadline: false,
      retryAfterMs: null,
    }),
    initial: 'starting',
    // No output: nobody reads a finished server's (the supervisor goes by the actor id), and xstate
    // resolves an output into every done event (one per server in a shutdown).
    states: {
      starting: {
        // A first start enters `launching` directly: `check` (one eventless step to `launching`) is where
        // restarts re-enter, and skipping it here saves a microstep and a snapshot per server at start-up.
        initial: 'launching',
        on: {
          STOP: { target: 'stopping', actions: 'intendStop' },
          APPROVE: { actions: 'approve' },
          QUARANTINE: { actions: 'quarantine' },
          DEADLINE: { target: '#server.reaping.handingOver', actions: 'markDeadline' },
        },
        states: {
          check: {
            always: { target: 'launching' },
          },
          launching: {
            invoke: [
              {
                id: 'initTimer',
                src: 'timer',
                input: ({ context }) => ({ ms: context.spec.settings.initTimeoutMs, event: 'INIT_TIMEOUT' }) satisfies TimerInput,
              },
              {
                id: 'launch',
                src: 'launchUpstream',
                input: ({ context }) => ({ name: context.name, owner: context.spec.owner }),
                onDone: [
                  { guard: 'quarantinesServer', target: '#server.quarantined', actions: ['markLaunched', 'recordToolChanges'] },
                  { guard: 'isQuarantined', target: '#server.quarantined', actions: 'markLaunched' },
                  { target: '#server.running', actions: 'markRunning' },
                ],
                onError: [
                  // Credentials needed: release what the attempt opened, then wait for a login (no retries).
                  { guard: 'needsAuth', target: '#server.stopping', actions: ['recordError', 'intendAuth'] },
                  { target: '#server.stopping', actions: ['recordError', 'intendRecover'] },
                ],
              },
            ],
            on: {
              INIT_TIMEOUT: { target: '#server.stopping', actions: ['recordInitTimeout', 'intendRecover'] },
              RESTART: { target: '#server.stopping', actions: 'intendRestart' },
            },
          },
          backoff: {
            after: { restartDelay: { target: 'launching' } },
            on: { RESTART: { target: 'check', actions: 'resetRestarts' } },
          },
          halted: {
            on: { RESTART: { target: 'check', actions: 'resetRestarts' } },
          },
          needsAuth: {
            // `mcp-warden auth login` stores tokens and sends RESTART; nothing here retries by itself.
            on: { RESTART: { target: 'check', actions: 'resetRestarts' } },
          },
        },
      },
      running: {
        invoke: {
          id: 'watch',
          src: 'watchUpstream',
          input: ({ context }) => watchInput(context),
        },
        on: {
          QUARANTINE: { target: 'quarantined', actions: 'quarantine' },
          APPROVE: { actions: 'approve' },
          TOOLS_UPDATED: [
            // A rug pull: a tool changed after approval. Withhold everything until a person looks
            // (or, in tool scope, just the changed tools).
            { guard: 'quarantinesServer', target: 'quarantined', actions: ['setTools', 'recordToolChanges'] },
            { actions: ['setTools', 'setWithheld'] },
          ],
          UPSTREAM_EXITED: [
            { guard: 'needsAuth', target: 'stopping', actions: ['recordExit', 'intendAuth', 'clearRuntime'] },
            { target: 'stopping', actions: ['recordExit', 'intendRecover', 'clearRuntime'] },
          ],
          RESTART: { target: 'stopping', actions: ['intendRestart', 'clearRuntime'] },
          STOP: { target: 'stopping', actions: 'stopLive' },
          DEADLINE: { target: '#server.reaping.handingOver', actions: 'markDeadline' },
        },
      },
      quarantined: {
        invoke: {
          id: 'watch',
          src: 'watchUpstream',
          input: ({ context }) => watchInput(context),
        },
        on: {
          APPROVE: { target: 'running', actions: 'approve' },
          QUARANTINE: { actions: 'quarantine' },
          TOOLS_UPDATED: { actions: ['setTools', 'recordToolChanges'] },
          UPSTREAM_EXITED: [
            { guard: 'needsAuth', target: 'stopping', actions: ['recordExit', 'intendAuth', 'clearRuntime'] },
            { target: 'stopping', actions: ['recordExit', 'intendRecover', 'clearRuntime'] },
          ],
          RESTART: { target: 'stopping', actions: ['intendRestart', 'clearRuntime'] },
          STOP: { target: 'stopping', actions: 'stopLive' },
          DEADLINE: { target: '#server.reaping.handingOver', actions: 'markDeadline' },
        },
      },
      stopping: {
        // No entry action: the transitions from running/quarantined clear the live upstream's fields
        // (clearRuntime, stopLive), and from `starting` there is nothing live to clear.
        // The release, its audit and stopping's deadline in one actor (releaseWithDeadline).
        invoke: {
          id: 'release',
          src: 'releaseOwned',
          input: ({ context }) =>
            ({ name: context.name, owner: context.spec.owner, deadlineMs: stopDeadlineMs(context.spec.settings) }) satisfies ReleaseInput,
        },
        on: {
          // Verified empty by the release's own audit: done. Anything else is reaping's to verify and force.
          // A stop (not a restart or recovery) verified empty goes straight to `stopped`: reaping.settled's
          // only job would be to choose `stopped`, and its two extra microsteps per server were a tenth of
          // a 500-server shutdown's statechart work.
          RELEASED: [
            { guard: 'stoppedForGood', target: '#server.stopped' },
            { guard: 'nothingRemains', target: '#server.reaping.settled' },
            { target: 'reaping' },
          ],
          // A failed polite release is not the end: reaping verifies and forces, visibly.
          RELEASE_FAILED: { target: 'reaping', actions: 'recordReleaseFailure' },
          STOP_DEADLINE: { target: 'reaping' },
          STOP: { actions: 'intendStop' },
          APPROVE: { actions: 'approve' },
          QUARANTINE: { actions: 'quarantine' },
          // Past the budget a hanging polite release is abandoned (the ledger entry stays, and moves).
          DEADLINE: { target: '#server.reaping.handingOver', actions: 'markDeadline' },
        },
      },
      reaping: {
        entry: 'resetReap',
        initial: 'auditing',
        on: {
          STOP: { actions: 'intendStop' },
          APPROVE: { actions: 'approve' },
          QUARANTINE: { actions: 'quarantine' },
        },
        states: {
          auditing: {
            invoke: {
              id: 'audit',
              src: 'auditOwned',
              input: ({ context }) => ({ name: context.name, owner: context.spec.owner }),
              onDone: [
                { guard: 'nothingRemains', target: 'settled', actions: 'recordRemaining' },
                { guard: 'deadlinePassed', target: 'backoff', actions: 'recordRemaining' },
                { guard: 'handOverDue', target: 'handingOver', actions: 'recordRemaining' },
                { guard: 'hasReapAttempted', target: 'backoff', actions: 'recordRemaining' },
                { target: 'forcing', actions: 'recordRemaining' },
              ],
              onError: [
                { guard: 'handOverDue', target: 'handingOver', actions: 'recordReapFailure' },
                { target: 'backoff', actions: 'recordReapFailure' },
              ],
            },
            on: { DEADLINE: { target: 'handingOver', actions: 'markDeadline' } },
          },
          forcing: {
            entry: 'incrementReap',
            invoke: {
              id: 'force',
              src: 'forceRelease',
              input: ({ context }) => ({ name: context.name, owner: context.spec.owner, attempt: context.reap.attempt }),
              onDone: { target: 'auditing' },
              onError: { target: 'auditing', actions: 'recordReapFailure' },
            },
            on: { DEADLINE: { target: 'handingOver', actions: 'markDeadline' } },
          },
          backoff: {
            // Past the deadline something new turned up after a hand-over: hand it over too.
            after: { reapDelay: [{ guard: 'deadlinePassed', target: 'handingOver' }, { target: 'forcing' }] },
            on: { DEADLINE: { target: 'handingOver', actions: 'markDeadline' } },
          },
          handingOver: {
            entry: 'incrementReap',
            invoke: {
              id: 'handover',
              src: 'handOver',
              input: ({ context }) => ({ name: context.name, owner: context.spec.owner }),
              onDone: { target: 'auditing' },
              onError: { target: 'backoff', actions: 'recordReapFailure' },
            },
            // Already handing over: only remember the deadline for what follows.
            on: { DEADLINE: { actions: 'markDeadline' } },
          },
          settled: {
            always: [
              { guard: 'intentStop', target: '#server.stopped' },
              { guard: 'intentRestart', target: '#server.starting.check', actions: 'resetRestarts' },
              { guard: 'intentAuth', target: '#server.starting.needsAuth' },
              { guard: 'crashLoop', target: '#server.starting.halted', actions: 'recordCrashLoop' },
              { target: '#server.starting.backoff', actions: 'countRestart' },
            ],
          },
        },
      },
      stopped: { type: 'final' },
    },
  });
}

export type ServerMachine = ReturnType<typeof createServerMachine>;
