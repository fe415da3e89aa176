/**
 * Reading the call log files back (`mcp-warden calls` without a running daemon): calls.jsonl.<N> …
 * calls.jsonl.1, then calls.jsonl, oldest first. Files are opened without following symlinks
 * (no-follow.ts); a line that is not a call entry (a torn last line, an edit) is skipped.
 */
import { join } from 'node:path';
import { readFileNoFollow } from '../store/no-follow.js';
import { CALL_LOG_FILE } from './call-log.js';
import { CALL_OUTCOMES, type CallEntry } from './call-record.js';

/** How many rotated files to look for beyond the setting's default (a larger callLogFileCount). */
const MAX_ROTATED = 100;

function isEntry(v: unknown): v is CallEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.time === 'string' &&
    typeof e.server === 'string' &&
    typeof e.tool === 'string' &&
    typeof e.durationMs === 'number' &&
    (CALL_OUTCOMES as readonly unknown[]).includes(e.outcome)
  );
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFileNoFollow(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The calls in the data dir's call log files, oldest first, filtered; the most recent `limit`. */
export async function readCallLogFiles(dataDir: string, filter: { server?: string; limit?: number } = {}): Promise<CallEntry[]> {
  const base = join(dataDir, CALL_LOG_FILE);
  const files: string[] = [];
  for (let i = MAX_ROTATED; i >= 1; i--) files.push(`${base}.${i}`);
  files.push(base);
  const out: CallEntry[] = [];
  for (const file of files) {
    const text = await readIfExists(file);
    if (text === undefined) continue;
    for (const line of text.split('\n')) {
      if (line.length === 0) continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        continue;
      }
      if (!isEntry(v) || (filter.server !== undefined && v.server !== filter.server)) continue;
      out.push({
        time: v.time,
        server: v.server,
        tool: v.tool,
        session: typeof v.session === 'string' ? v.session : null,
        durationMs: v.durationMs,
        outcome: v.outcome,
        errorCode: typeof v.errorCode === 'string' ? v.errorCode : null,
      });
    }
  }
  return filter.limit === undefined ? out : out.slice(Math.max(0, out.length - filter.limit));
}
