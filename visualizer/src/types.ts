/**
 * The control-channel messages the page uses (subprotocol `mcp-warden.v1`), as types only. The
 * authoritative schemas are in src/control/protocol.ts (zod, not loaded in the browser); these mirror
 * them and are checked against a real daemon by test/browser/visualizer.test.ts.
 */

interface ErrorInfo {
  code: string;
  message: string;
  at?: number;
}

export interface ServerView {
  name: string;
  /** Dotted state path (`starting.backoff`, `running`, `reaping.auditing`, `stopped`) or `disabled`. */
  state: string;
  quarantined: boolean;
  attempt: number;
  restartsInWindow: number;
  reapAttempt: number;
  lastError: ErrorInfo | null;
  pid: number | null;
  toolCount: number;
  upSince: number | null;
  resources: Record<string, number>;
  /** Present when the server runs in a container (a later protocol addition; shown if sent). */
  container?: string | null;
}

/** The daemon's config file as last read (hot reload): ok, or the error that kept an edit from applying. */
export type ConfigStatus =
  { ok: true; path: string; loadedAt: number } | { ok: false; path: string; error: { code: string; message: string }; at: number };

/** One tool call the daemon answered (the call log, src/adapters/observability/call-record.ts). */
export interface CallEntry {
  time: string;
  server: string;
  tool: string;
  session: string | null;
  durationMs: number;
  outcome: 'ok' | 'tool_error' | 'error' | 'timeout' | 'cancelled';
  errorCode: string | null;
}

export type DaemonEvent =
  | { type: 'server'; server: ServerView; previousState: string | null; at: number }
  | { type: 'server-removed'; name: string; at: number }
  | { type: 'config'; config: ConfigStatus; at: number }
  | { type: 'calls'; calls: CallEntry[]; at: number };

export interface DaemonInfo {
  instanceId: string;
  version: string;
  uptimeMs: number;
  pid: number;
}

export interface SnapshotMessage {
  type: 'snapshot';
  daemon: DaemonInfo;
  servers: ServerView[];
  ledger: Record<string, Record<string, number>>;
  machine: MachineNodeJson;
  config?: ConfigStatus;
}

export interface ControlError {
  code: string;
  message: string;
  issues?: { path: string; message: string }[];
}

export type DaemonMessage =
  | SnapshotMessage
  | { type: 'event'; event: DaemonEvent }
  | { type: 'log'; server: string | null; record: Record<string, unknown> }
  | { type: 'result'; id: string | number; ok: true; result: unknown }
  | { type: 'result'; id: string | number; ok: false; error: ControlError }
  | { type: 'error'; code: string; message: string }
  | { type: 'subscribed'; logs: string[] }
  | { type: 'pong'; id?: string | number };

/** One transition as xstate's `toJSON()` writes it. */
export interface TransitionJson {
  eventType: string;
  target?: string[];
  guard?: string | { type?: string } | null;
  actions?: Array<string | { type?: string }>;
  source?: string;
  delay?: string | number;
}

/** A state node as xstate's `machine.toJSON()` writes it, plus `always` (src/daemon/machine-definition.ts). */
export interface MachineNodeJson {
  id: string;
  key: string;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  initial?: { target?: string[] };
  states?: Record<string, MachineNodeJson>;
  transitions?: TransitionJson[];
  always?: TransitionJson[];
  invoke?: Array<{ id?: string; src?: string }>;
  order?: number;
}

interface ToolInfo {
  name: string;
  description?: string;
  inputSchema?: unknown;
  [key: string]: unknown;
}

export interface ToolsResult {
  name: string;
  state: string;
  quarantined: boolean;
  tools: ToolInfo[];
  /** Prompts and resource templates as listed (approved with the tools); absent from older daemons. */
  prompts?: Record<string, unknown>[];
  resourceTemplates?: Record<string, unknown>[];
  /** The tool-set fingerprint: server.approve takes it back, binding the approval to what was shown. */
  fingerprint: string;
  /** Differences from the approved record (null without one). */
  changes: { tool: string; item?: string; kind: string; fields: string[]; summary: string }[] | null;
  approvedAt: string | null;
  /** Text a person cannot see or would not expect (src/core/tool-flags.ts); advisory. */
  flags: { tool: string; kind: string; path: string; detail: string }[];
}
