/**
 * Per-server tool filters (docs/config.md#tool-filters): globs over the upstream's own tool names,
 * `*` = any run of characters, `?` = one character, everything else literal, whole-name match.
 * A tool is exposed when it matches `allow` (or there is no `allow`) and matches no `deny`.
 * Pure module.
 */

export const MAX_TOOL_GLOB_LENGTH = 200;

export interface ToolFilterSpec {
  allow?: readonly string[];
  deny?: readonly string[];
  pinned?: readonly string[];
}

export interface CompiledToolFilter {
  /** Listed, searched and callable. */
  exposes(tool: string): boolean;
  /** Listed beside retrieve_tools/call_tool in search mode (only if also exposed). */
  pins(tool: string): boolean;
}

function globRegExp(glob: string): RegExp {
  let src = '';
  for (const ch of glob) {
    if (ch === '*') src += '.*';
    else if (ch === '?') src += '.';
    else src += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${src}$`, 's');
}

function anyOf(globs: readonly string[] | undefined): ((name: string) => boolean) | undefined {
  if (!globs) return undefined;
  const res = globs.map(globRegExp);
  return (name) => res.some((r) => r.test(name));
}

const NONE = () => false;

export function compileToolFilter(spec: ToolFilterSpec | undefined): CompiledToolFilter {
  const allow = anyOf(spec?.allow);
  const deny = anyOf(spec?.deny) ?? NONE;
  const pinned = anyOf(spec?.pinned) ?? NONE;
  const exposes = (tool: string) => (allow === undefined || allow(tool)) && !deny(tool);
  return { exposes, pins: (tool) => pinned(tool) && exposes(tool) };
}

/** True when the spec hides nothing (no allow, no deny): the fast path keeps the tools array as it is. */
export function filtersNothing(spec: ToolFilterSpec | undefined): boolean {
  return spec?.allow === undefined && (spec?.deny === undefined || spec.deny.length === 0);
}
