/**
 * Paging of the lists the front serves (resources, templates, prompts): opaque cursors that carry the
 * offset of the next page; a cursor we did not issue is E_BAD_CURSOR.
 */
import type { ServerResult } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCodes, rpcCodeOf } from '../../core/error-codes.js';
import { FrontMcpError } from './front-errors.js';

/** Opaque list cursors: the offset of the next page. */
function encodeCursor(offset: number): string {
  return Buffer.from(`o:${offset}`).toString('base64url');
}

function decodeCursor(cursor: unknown): number {
  if (cursor === undefined) return 0;
  const m = typeof cursor === 'string' ? /^o:(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString()) : null;
  if (!m) throw new FrontMcpError(rpcCodeOf(ErrorCodes.BAD_CURSOR), 'Invalid cursor', { code: ErrorCodes.BAD_CURSOR });
  return Number(m[1]);
}

function pageOf<T>(items: T[], cursor: unknown, pageSize: number): { items: T[]; nextCursor?: string } {
  const start = decodeCursor(cursor);
  if (start > items.length) throw new FrontMcpError(rpcCodeOf(ErrorCodes.BAD_CURSOR), 'Invalid cursor', { code: ErrorCodes.BAD_CURSOR });
  const end = start + pageSize;
  return end < items.length ? { items: items.slice(start, end), nextCursor: encodeCursor(end) } : { items: items.slice(start) };
}

/** One page of `items` as the result of a list request: `{[field]: page, nextCursor?}`. */
export function paged(field: string, items: Record<string, unknown>[], cursor: unknown, pageSize: number): ServerResult {
  const p = pageOf(items, cursor, pageSize);
  const result: Record<string, unknown> = { [field]: p.items };
  if (p.nextCursor !== undefined) result['nextCursor'] = p.nextCursor;
  return result as ServerResult;
}
