/**
 * The prompts and resource templates of an upstream, all pages, for the integrity check
 * (src/core/offer-fingerprint.ts): fetched by the server actor at launch and after the upstream's
 * `prompts/list_changed` / `resources/list_changed`, so the lists the endpoint serves are the lists
 * that were checked. A server without the capability (or without the method) offers an empty list; a failed fetch resolves
 * `undefined` (logged): the check then leaves that list alone and the endpoint serves what it had.
 */
import type { Logger } from 'pino';
import { isPlainObject } from '../../core/plain-object.js';
import { WardenError } from '../../core/error-codes.js';
import { MAX_TOOL_PAGES, type UpstreamConnection } from './upstream-client.js';

type Item = Record<string, unknown>;
const METHOD_NOT_FOUND = -32601;
export type OfferedListKind = 'prompts' | 'resourceTemplates';

const LISTS: Record<OfferedListKind, { method: string; field: string; capability: string }> = {
  prompts: { method: 'prompts/list', field: 'prompts', capability: 'prompts' },
  resourceTemplates: { method: 'resources/templates/list', field: 'resourceTemplates', capability: 'resources' },
};

/** Upstream notifications that mean a list must be fetched (and checked) again. */
export const OFFERED_LIST_CHANGED: Record<string, OfferedListKind> = {
  'notifications/prompts/list_changed': 'prompts',
  'notifications/resources/list_changed': 'resourceTemplates',
};

/**
 * Every page of one list method (`nextCursor` followed, at most MAX_TOOL_PAGES pages, a repeated cursor
 * ends it); items that are not JSON objects are dropped. Rejects as the request does.
 */
export async function fetchAllPages(
  connection: Pick<UpstreamConnection, 'request'>,
  method: string,
  field: string,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<Item[]> {
  const items: Item[] = [];
  const seen = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; page < MAX_TOOL_PAGES; page++) {
    const result = await connection.request(method, cursor === undefined ? {} : { cursor }, {
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
    });
    const list = result[field];
    if (!Array.isArray(list)) break;
    for (const item of list) if (isPlainObject(item)) items.push(item);
    const next = result['nextCursor'];
    if (typeof next !== 'string' || seen.has(next)) break;
    seen.add(next);
    cursor = next;
  }
  return items;
}

export async function fetchOfferedList(
  connection: UpstreamConnection,
  kind: OfferedListKind,
  opts: { timeoutMs: number; signal?: AbortSignal; logger?: Logger },
): Promise<Item[] | undefined> {
  const { method, field, capability } = LISTS[kind];
  if (!isPlainObject(connection.capabilities[capability])) return [];
  try {
    return await fetchAllPages(connection, method, field, opts);
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    // Declared the capability but not this list (JSON-RPC "method not found"): it offers none.
    if (err instanceof WardenError && err.detail?.upstream?.code === METHOD_NOT_FOUND) return [];
    opts.logger?.warn({ method, err: String(err) }, 'upstream list failed; nothing of it is served until a refresh succeeds');
    return undefined;
  }
}
