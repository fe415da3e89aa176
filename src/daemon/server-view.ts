/**
 * A plain, secret-free view of one server actor for /healthz, the control channel and UIs.
 */
import type { StateValue } from 'xstate';
import type { ErrorInfo } from '../core/error-codes.js';
import type { ResourceKind } from '../core/resource-ledger.js';
import type { ServerActorRef, ServerSnapshot } from './server-actors.js';

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
}

export function stateString(value: StateValue): string {
  if (typeof value === 'string') return value;
  const [k, v] = Object.entries(value)[0] ?? ['unknown', undefined];
  return v === undefined ? k : `${k}.${stateString(v as StateValue)}`;
}

export function viewOf(ref: ServerActorRef, resources: Partial<Record<ResourceKind, number>>): ServerView | undefined {
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
      reapAttempt: c.reapAttempt,
      lastError: c.lastError,
      pid: c.pid,
      toolCount: c.tools.length,
      upSince: c.upSince,
      resources,
    };
  } catch {
    return undefined;
  }
}
