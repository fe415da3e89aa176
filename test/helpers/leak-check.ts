/**
 * Leak checks for tests against real processes: every spawned process carries
 * MCP_WARDEN_INSTANCE=<unique id> in its environment (inherited by grandchildren), so after a test
 * we can find anything it left behind by scanning the process table, whatever its process group.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from 'pino';
import { findByEnv, type ProcInfo } from './process-table.js';

export const MARKER_ENV = 'MCP_WARDEN_INSTANCE';

/** A fresh, unique marker value. */
export function newInstanceId(prefix = 'test'): string {
  return `${prefix}-${process.pid}-${randomUUID()}`;
}

/** Live (non-zombie) processes whose environment has MCP_WARDEN_INSTANCE=<instanceId>. */
export function processesWithMarker(instanceId: string): ProcInfo[] {
  return findByEnv(MARKER_ENV, (v) => v === instanceId);
}

/** Polls `predicate` every intervalMs until it holds (true) or timeoutMs passed (false). */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs, intervalMs = 20 }: { timeoutMs: number; intervalMs?: number },
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return true;
    const remaining = deadline - Date.now();
    if (remaining <= 0) return false;
    await new Promise<void>((r) => setTimeout(r, Math.min(intervalMs, remaining)));
  }
}

/** Fails unless, within timeoutMs, no live process carries the marker. */
export async function assertNoProcessesWithMarker(instanceId: string, timeoutMs = 1_000): Promise<void> {
  const clean = await waitFor(() => processesWithMarker(instanceId).length === 0, { timeoutMs });
  if (!clean) {
    const left = processesWithMarker(instanceId);
    assert.fail(
      `${left.length} process(es) with ${MARKER_ENV}=${instanceId} still running: ` +
        left.map((p) => `${p.pid} (${p.comm}, pgid ${p.pgid}, state ${p.state})`).join(', '),
    );
  }
}

/** Test cleanup of last resort: SIGKILL every process carrying the marker. Returns how many. */
export function killProcessesWithMarker(instanceId: string): number {
  const left = processesWithMarker(instanceId);
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return left.length;
}

/**
 * Runs `body`; if it succeeded, then `verify` (the leak checks: a failing body's own error is the one
 * to report); whatever happens, `cleanup` last, so nothing is left running and a failure can't hang
 * the runner.
 */
export async function runLeakChecked(
  body: () => Promise<void>,
  { verify, cleanup }: { verify: () => Promise<void>; cleanup: () => Promise<void> },
): Promise<void> {
  let failed = false;
  try {
    await body();
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    try {
      if (!failed) await verify();
    } finally {
      await cleanup();
    }
  }
}

/** An environment for a spawned fixture: this process's env, the marker, and extras. */
export function markedEnv(instanceId: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  // Keep the test runner's IPC/inspector plumbing out of fixtures.
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  return { ...env, [MARKER_ENV]: instanceId, ...extra };
}

export interface CapturedLog {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger writing JSON lines into memory (level debug), for assertions on log output. */
export function memoryLogger(): { logger: Logger; lines: CapturedLog[] } {
  const lines: CapturedLog[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (!text) continue;
        try {
          lines.push(JSON.parse(text) as CapturedLog);
        } catch {
          // ignore partial output
        }
      }
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  return { logger, lines };
}
