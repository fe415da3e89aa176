/**
 * A plain, secret-free view of one server actor for /healthz, the control channel and UIs.
 */
import type { StateValue } from 'xstate';
import type { ErrorInfo } from '../core/error-codes.js';
import type { ResourceKind } from '../core/resource-ledger.js';
import type { ServerEntry } from '../config/config-types.js';
import { dockerWarnings } from '../config/docker-options.js';
import { redactSecrets } from '../adapters/log/logger.js';
import {
  serverActorId,
  serverActorOf,
  serverActorsOf,
  type ServerActorRef,
  type ServerSnapshot,
  type SupervisorActorRef,
} from './server-actors.js';

export interface ServerView {
  name: string;
  /** Dotted state path, e.g. `running` or `starting.backoff`; `disabled` for a disabled config entry. */
  state: string;
  quarantined: boolean;
  attempt: number;
  restartsInWindow: number;
  reapAttempt: number;
  lastError: ErrorInfo | null;
  pid: number | null;
  toolCount: number;
  upSince: number | null;
  resources: Partial<Record<ResourceKind, number>>;
  /** What this server can reach on the host beyond the hardened defaults (privileged, host mounts…); absent when nothing. */
  warnings?: string[];
}

export function stateString(value: StateValue): string {
  if (typeof value === 'string') return value;
  const [k, v] = Object.entries(value)[0] ?? ['unknown', undefined];
  return v === undefined ? k : `${k}.${stateString(v as StateValue)}`;
}

function viewOf(ref: ServerActorRef, resources: Partial<Record<ResourceKind, number>>): ServerView | undefined {
  try {
    return viewOfSnapshot(ref.getSnapshot(), resources);
  } catch {
    return undefined;
  }
}

export function viewOfSnapshot(snap: ServerSnapshot, resources: Partial<Record<ResourceKind, number>>): ServerView | undefined {
  try {
    const c = snap.context;
    return {
      name: c.name,
      state: snap.status === 'done' ? 'stopped' : stateString(snap.value),
      quarantined: c.quarantined,
      attempt: c.attempt,
      restartsInWindow: c.restartTimes.length,
      reapAttempt: c.reap.attempt,
      // An error may quote a spawn command or its arguments: secrets in them are redacted (logger.ts).
      lastError: c.lastError ? { ...c.lastError, message: redactSecrets(c.lastError.message) } : null,
      // A remote server has no process (-1).
      pid: c.up !== null && c.up.pid >= 0 ? c.up.pid : null,
      toolCount: c.tools.length,
      upSince: c.up?.upSince ?? null,
      resources,
    };
  } catch {
    return undefined;
  }
}

/**
 * Every configured server's view, in config order (a server without an actor shows `disabled` or
 * `stopped`), then removed servers whose actor is still draining, until they reach `stopped`.
 */
export function serverViews(
  entries: readonly [string, ServerEntry][],
  root: SupervisorActorRef,
  counts: Record<string, Partial<Record<ResourceKind, number>>>,
): ServerView[] {
  const out: ServerView[] = [];
  const configured = new Set<string>();
  for (const [name, entry] of entries) {
    configured.add(name);
    const ref = serverActorOf(root, name);
    out.push(configuredView(name, entry, snapshotOf(ref), counts[serverActorId(name)] ?? {}));
  }
  out.push(...drainingViews(configured, root, counts));
  return out;
}

/** A server's snapshot, if it has an actor (never throws). */
export function snapshotOf(ref: ServerActorRef | undefined): ServerSnapshot | undefined {
  try {
    return ref?.getSnapshot();
  } catch {
    return undefined;
  }
}

/** The view of a configured server from its actor's snapshot (`disabled` or `stopped` without one). */
export function configuredView(
  name: string,
  entry: ServerEntry,
  snap: ServerSnapshot | undefined,
  resources: Partial<Record<ResourceKind, number>>,
): ServerView {
  const v = snap ? viewOfSnapshot(snap, resources) : undefined;
  const warnings = dockerWarnings(entry.docker);
  const view: ServerView = v ?? {
    name,
    state: entry.disabled ? 'disabled' : 'stopped',
    quarantined: entry.quarantined,
    attempt: 0,
    restartsInWindow: 0,
    reapAttempt: 0,
    lastError: null,
    pid: null,
    toolCount: 0,
    upSince: null,
    resources,
  };
  if (warnings.length > 0) view.warnings = warnings;
  return view;
}

/** Removed servers whose actor is still draining, until they reach `stopped`. */
export function drainingViews(
  configured: ReadonlySet<string>,
  root: SupervisorActorRef,
  counts: Record<string, Partial<Record<ResourceKind, number>>>,
): ServerView[] {
  const out: ServerView[] = [];
  for (const { name, ref } of serverActorsOf(root)) {
    if (configured.has(name)) continue;
    const v = viewOf(ref, counts[serverActorId(name)] ?? {});
    if (v && v.state !== 'stopped') out.push(v);
  }
  return out;
}
