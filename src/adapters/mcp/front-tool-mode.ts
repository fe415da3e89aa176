/**
 * Which tool mode a new /mcp session gets (docs/mcp-endpoint.md#tool-search): the `toolMode` query
 * parameter of its initialize request, else settings.toolMode. Kept apart from the search tools
 * themselves (front-search-tools.ts) so that reading the mode never loads the search index.
 */
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import type { Settings } from '../../core/settings.js';

export type ToolMode = Settings['toolMode'];
const MODES: readonly string[] = ['all', 'search'];

/**
 * The mode of a session starting at `url` on `scope` (undefined: the federated /mcp). Throws
 * WardenError(BAD_TOOL_MODE) for an unknown value, or `search` on /mcp/<server> (one server's tools
 * are listed as they are there).
 */
export function toolModeOf(url: string | undefined, scope: string | undefined, fallback: ToolMode): ToolMode {
  const q = url?.indexOf('?') ?? -1;
  const given = q < 0 ? null : new URLSearchParams(url!.slice(q + 1)).get('toolMode');
  if (given === null) return scope === undefined ? fallback : 'all';
  if (!MODES.includes(given)) {
    throw new WardenError(ErrorCodes.BAD_TOOL_MODE, `toolMode must be "all" or "search", got ${JSON.stringify(given.slice(0, 40))}`);
  }
  if (given === 'search' && scope !== undefined) {
    throw new WardenError(ErrorCodes.BAD_TOOL_MODE, "toolMode=search applies to /mcp only; /mcp/<server> lists that server's tools");
  }
  return given as ToolMode;
}
