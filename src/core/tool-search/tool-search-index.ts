/**
 * The search index behind `retrieve_tools` (docs/mcp-endpoint.md#tool-search): BM25 (MiniSearch's
 * BM25+) over each federated tool's name (split into words), server name, description and parameter
 * names and descriptions, with field weights; plus a `concepts` field (concepts.ts) that lets a
 * paraphrase meet a tool it shares no word with, weighted below shared words.
 *
 * Incremental: sync() is given every running server's exposed tools; a server whose tools array is
 * the same object as last time is not touched, a changed one has its documents replaced, a gone one
 * removed. Pure (no I/O); loaded by the MCP front only in search mode (a dynamic import), so the
 * default `all` mode never loads MiniSearch.
 */
import MiniSearch, { type Query } from 'minisearch';
import { TOOL_SEPARATOR, type CatalogTool, type ToolGroup } from '../tool-catalog.js';
import { conceptsOf, relatedTerms } from './concepts.js';
import { isStopWord, terms } from './tool-terms.js';

/** Weight of a synonym-expanded query word against one the query itself has. */
export const RELATED_WEIGHT = 0.5;

/** Relative weight of each field in the BM25 score. */
export const FIELD_WEIGHTS = Object.freeze({ name: 3, server: 2, description: 1.5, params: 0.6, concepts: 0.8 });

export interface ToolSearchOptions {
  /** Off: BM25 over shared words only (the benchmark's baseline). Default on. */
  concepts?: boolean;
}

export interface ToolHit {
  /** Federated name, `server__tool`. */
  name: string;
  score: number;
  tool: CatalogTool;
}

interface Doc {
  id: string;
  name: string;
  server: string;
  description: string;
  params: string;
  concepts: string;
}

const TEXT_FIELDS = ['name', 'server', 'description', 'params'];
const RELATED_BOOST = { name: FIELD_WEIGHTS.name * RELATED_WEIGHT, description: FIELD_WEIGHTS.description * RELATED_WEIGHT };
const PREFIX_WEIGHTS = { fuzzy: 0.2, prefix: 0.3 };
const splitSpaces = (text: string) => text.split(' ').filter(Boolean);

/** Parameter names and descriptions of a JSON Schema object (one level, and one level of nesting). */
function paramText(schema: unknown, depth = 0): string {
  if (typeof schema !== 'object' || schema === null || depth > 1) return '';
  const props = (schema as { properties?: unknown }).properties;
  if (typeof props !== 'object' || props === null) return '';
  const parts: string[] = [];
  for (const [key, value] of Object.entries(props as Record<string, unknown>)) {
    parts.push(key);
    if (typeof value === 'object' && value !== null) {
      const d = (value as { description?: unknown }).description;
      if (typeof d === 'string') parts.push(d);
      parts.push(paramText(value, depth + 1));
      const items = (value as { items?: unknown }).items;
      if (items) parts.push(paramText(items, depth + 1));
    }
  }
  return parts.join(' ');
}

function docOf(server: string, tool: CatalogTool, useConcepts: boolean): Doc {
  const description = typeof tool.description === 'string' ? tool.description : '';
  const title = typeof tool['title'] === 'string' ? tool['title'] : '';
  const name = `${tool.name} ${title}`;
  return {
    id: `${server}${TOOL_SEPARATOR}${tool.name}`,
    name,
    server,
    description,
    params: paramText(tool.inputSchema),
    // Concepts of what the tool says it does (not of its parameters: they name inputs, not the action).
    concepts: useConcepts ? conceptsOf(`${name} ${server} ${description}`).join(' ') : '',
  };
}

export class ToolSearchIndex {
  private readonly mini = new MiniSearch<Doc>({
    fields: ['name', 'server', 'description', 'params', 'concepts'],
    // Concept ids are single tokens already; every other field gets the shared word treatment.
    tokenize: (text, field) => (field === 'concepts' ? text.split(' ').filter(Boolean) : terms(text)),
    processTerm: (t) => t,
    searchOptions: { tokenize: (text) => terms(text), processTerm: (t) => t },
    autoVacuum: { minDirtCount: 200, minDirtFactor: 0.2, batchSize: 1_000, batchWait: 10 },
  });
  private readonly servers = new Map<string, { tools: readonly CatalogTool[]; ids: string[] }>();
  private readonly tools = new Map<string, CatalogTool>();
  private readonly useConcepts: boolean;

  constructor(opts: ToolSearchOptions = {}) {
    this.useConcepts = opts.concepts !== false;
  }

  get size(): number {
    return this.tools.size;
  }

  /** Bring the index up to `groups` (every running server's exposed tools), touching only what changed. */
  sync(groups: readonly ToolGroup[]): { added: number; removed: number } {
    let added = 0;
    let removed = 0;
    for (const g of groups) {
      const r = this.syncServer(g);
      added += r.added;
      removed += r.removed;
    }
    removed += this.keepOnly(new Set(groups.map((g) => g.server)));
    return { added, removed };
  }

  /** One server's part of sync(): nothing when its tools array is the one indexed. */
  syncServer(g: ToolGroup): { added: number; removed: number } {
    const had = this.servers.get(g.server);
    if (had && had.tools === g.tools) return { added: 0, removed: 0 };
    const removed = had ? this.drop(g.server) : 0;
    const ids: string[] = [];
    const docs: Doc[] = [];
    for (const t of g.tools) {
      const doc = docOf(g.server, t, this.useConcepts);
      if (this.tools.has(doc.id)) continue; // a duplicate name upstream: the first one wins, as on tools/list
      this.tools.set(doc.id, t);
      ids.push(doc.id);
      docs.push(doc);
    }
    this.mini.addAll(docs);
    this.servers.set(g.server, { tools: g.tools, ids });
    return { added: docs.length, removed };
  }

  /** Drops every server not in `servers`; returns how many tools went. */
  keepOnly(servers: ReadonlySet<string>): number {
    let removed = 0;
    for (const server of [...this.servers.keys()]) if (!servers.has(server)) removed += this.drop(server);
    return removed;
  }

  private drop(server: string): number {
    const had = this.servers.get(server);
    if (!had) return 0;
    for (const id of had.ids) {
      this.mini.discard(id);
      this.tools.delete(id);
    }
    this.servers.delete(server);
    return had.ids.length;
  }

  /** The best `limit` tools for `query`, best first; scores are BM25 sums (higher is better, not normalised). */
  search(query: string, limit: number): ToolHit[] {
    const q: Query = {
      combineWith: 'OR',
      queries: [
        { queries: [query], fields: TEXT_FIELDS, boost: FIELD_WEIGHTS, prefix: (t: string) => t.length >= 5, weights: PREFIX_WEIGHTS },
      ],
    };
    if (this.useConcepts) {
      // Synonym expansion: the other words of the query's concepts, in names and descriptions, weighted down.
      const related = relatedTerms(query, new Set(terms(query))).filter((w) => !isStopWord(w));
      if (related.length > 0) {
        q.queries.push({
          queries: [related.join(' ')],
          fields: ['name', 'description'],
          boost: RELATED_BOOST,
          tokenize: splitSpaces,
          prefix: false,
        });
      }
      const concepts = conceptsOf(query);
      if (concepts.length > 0) {
        q.queries.push({
          queries: [concepts.join(' ')],
          fields: ['concepts'],
          boost: { concepts: FIELD_WEIGHTS.concepts },
          tokenize: splitSpaces,
        });
      }
    }
    const out: ToolHit[] = [];
    for (const r of this.mini.search(q)) {
      const tool = this.tools.get(r.id as string);
      if (!tool) continue;
      out.push({ name: r.id as string, score: r.score, tool });
      if (out.length >= limit) break;
    }
    return out;
  }
}
