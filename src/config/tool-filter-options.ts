/**
 * Validation of a server entry's `tools` object (docs/config.md#tool-filters): `allow`, `deny` and
 * `pinned`, each a list of globs over the upstream's own tool names. Pure, never throws: problems
 * become ConfigIssues naming the field (`$.mcpServers.github.tools.deny[1]`), unknown keys warnings.
 */
import { describeType, joinPath } from './json-path.js';
import type { ConfigIssue, ConfigWarning, ToolFilterOptions } from './config-types.js';
import { isPlainObject } from '../core/plain-object.js';
import { MAX_TOOL_GLOB_LENGTH } from '../core/tool-filter.js';

const LIST_KEYS = ['allow', 'deny', 'pinned'] as const;

export function parseToolFilterOptions(
  raw: unknown,
  at: string,
  issues: ConfigIssue[],
  warnings: ConfigWarning[],
): ToolFilterOptions | undefined {
  if (!isPlainObject(raw)) {
    issues.push({ path: at, message: `expected an object like {"allow": ["read_*"], "deny": ["*delete*"]}, got ${describeType(raw)}` });
    return undefined;
  }
  for (const key of Object.keys(raw)) {
    if (!(LIST_KEYS as readonly string[]).includes(key)) {
      warnings.push({ path: joinPath(at, key), message: 'unknown key (known: "allow", "deny", "pinned")', level: 'warning' });
    }
  }
  const out: ToolFilterOptions = {};
  const before = issues.length;
  for (const key of LIST_KEYS) {
    const v = raw[key];
    if (v === undefined) continue;
    const p = joinPath(at, key);
    if (!Array.isArray(v)) {
      issues.push({ path: p, message: `expected an array of tool-name globs (e.g. ["read_*"]), got ${describeType(v)}` });
      continue;
    }
    const globs: string[] = [];
    v.forEach((g: unknown, i) => {
      if (typeof g !== 'string') {
        issues.push({ path: joinPath(p, i), message: `expected a tool-name glob as a string, got ${describeType(g)}` });
      } else if (g.length === 0 || g.length > MAX_TOOL_GLOB_LENGTH || /[\u0000-\u001f]/.test(g)) {
        issues.push({
          path: joinPath(p, i),
          message: `expected a non-empty glob of at most ${MAX_TOOL_GLOB_LENGTH} printable characters (* and ? are wildcards)`,
        });
      } else {
        globs.push(g);
      }
    });
    out[key] = globs;
  }
  return issues.length > before ? undefined : out;
}
