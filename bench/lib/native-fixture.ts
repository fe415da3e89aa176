/**
 * The scale section's upstream: bench/fixtures/echo-server.c, compiled with the system's C compiler
 * into .bench/ on first use (and again when the source is newer). A C server starts in about a
 * millisecond, so 500 of them measure the proxy's own per-upstream cost instead of 500 Node start-ups.
 * Without a compiler the caller falls back to the Node echo fixture, and the report says so.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './paths.js';

export const NATIVE_ECHO_SOURCE = join(REPO, 'bench', 'fixtures', 'echo-server.c');

/** Path of the compiled fixture, or the reason there is none. */
export function nativeEcho(): { ok: true; path: string } | { ok: false; reason: string } {
  const out = join(REPO, '.bench', 'echo-server-c');
  if (!existsSync(NATIVE_ECHO_SOURCE)) return { ok: false, reason: `${NATIVE_ECHO_SOURCE} is missing` };
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(NATIVE_ECHO_SOURCE).mtimeMs) return { ok: true, path: out };
  mkdirSync(join(REPO, '.bench'), { recursive: true });
  for (const cc of [process.env['CC'], 'cc', 'gcc', 'clang'].filter((c): c is string => !!c)) {
    const r = spawnSync(cc, ['-O2', '-o', out, NATIVE_ECHO_SOURCE], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return { ok: true, path: out };
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') continue;
    return { ok: false, reason: `${cc} failed: ${(r.stderr || String(r.error)).trim().slice(0, 200)}` };
  }
  return { ok: false, reason: 'no C compiler (cc, gcc, clang) found' };
}
