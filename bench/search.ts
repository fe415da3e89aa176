/**
 * Tool-search benchmark (BENCH_ONLY=search): ranking quality of the retrieve_tools index on real
 * servers' tool lists (bench/search-tools.fixture.json, labelled queries in bench/search-queries.json),
 * with and without the concept table, and its cost: module load and index memory, build time, and
 * search latency with 5,000 synthetic tools.
 *
 * Run in its own process (run-bench.ts spawns `node --expose-gc dist/bench/search.js`), so the memory
 * numbers are this module's alone; it prints `RESULT <json>`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './lib/paths.js';
import { percentile, sortNum } from './lib/stats.js';
import { syntheticGroups } from './search-synthetic.js';
import type { CatalogTool, ToolGroup } from '../src/core/tool-catalog.js';
import { terms } from '../src/core/tool-search/tool-terms.js';
// Type only: the module itself is imported in measureSearch(), to measure its load.
import type { ToolSearchIndex as ToolSearchIndexType } from '../src/core/tool-search/tool-search-index.js';

interface Fixture {
  servers: Array<{ server: string; package: string; version: string; tools: CatalogTool[] }>;
}
interface LabelledQuery {
  q: string;
  targets: string[];
}

export interface QualityRow {
  queries: number;
  recallAt1: number;
  recallAt5: number;
  mrr: number;
}

export interface SearchBenchResult {
  corpus: { servers: Array<{ server: string; package: string; version: string; tools: number }>; tools: number };
  queries: { total: number; paraphrased: number };
  /** BM25 over shared words only, and with the concept table; each for all, literal and paraphrased queries. */
  quality: Record<'bm25' | 'concepts', Record<'all' | 'literal' | 'paraphrased', QualityRow>>;
  misses: Array<{ q: string; paraphrased: boolean; top: string[]; targets: string[] }>;
  cost: {
    moduleLoadMs: number;
    moduleHeapBytes: number;
    realBuildMs: number;
    synthetic: {
      tools: number;
      buildMs: number;
      indexHeapBytes: number;
      /** Replacing one server's 50 tools (a list_changed). */
      updateMs: number;
      searchP50Ms: number;
      searchP95Ms: number;
      /** The same searches on a BM25-only index (no concepts): what the concept table costs. */
      baselineSearchP50Ms: number;
      searches: number;
    };
  };
}

const fixture = JSON.parse(readFileSync(join(REPO, 'bench', 'search-tools.fixture.json'), 'utf8')) as Fixture;
const labelled = (JSON.parse(readFileSync(join(REPO, 'bench', 'search-queries.json'), 'utf8')) as { queries: LabelledQuery[] }).queries;

function groupsOf(f: Fixture): ToolGroup[] {
  return f.servers.map((s) => ({ server: s.server, tools: s.tools, pinned: [] }));
}

/** Every content term of a tool as the index sees it (name, server, description, parameter names and descriptions). */
function toolTerms(server: string, t: CatalogTool): Set<string> {
  const params = JSON.stringify((t.inputSchema as { properties?: unknown })?.properties ?? {});
  return new Set(terms(`${t.name} ${server} ${t.description ?? ''} ${params}`));
}

const toolByName = new Map<string, { server: string; tool: CatalogTool }>();
for (const s of fixture.servers) for (const t of s.tools) toolByName.set(`${s.server}__${t.name}`, { server: s.server, tool: t });

/** Paraphrased: the query shares no content term with any of its targets. */
function isParaphrase(q: LabelledQuery): boolean {
  const qt = terms(q.q);
  return q.targets.every((name) => {
    const hit = toolByName.get(name);
    if (!hit) throw new Error(`labelled target ${name} is not in the fixture`);
    const tt = toolTerms(hit.server, hit.tool);
    return qt.every((w) => !tt.has(w));
  });
}

function heap(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

type IndexModule = { ToolSearchIndex: typeof ToolSearchIndexType };

function quality(mod: IndexModule, concepts: boolean, misses?: SearchBenchResult['misses']) {
  const index = new mod.ToolSearchIndex({ concepts });
  index.sync(groupsOf(fixture));
  const rows = { all: [] as number[], literal: [] as number[], paraphrased: [] as number[] };
  for (const q of labelled) {
    const top = index.search(q.q, 10).map((h) => h.name);
    const rank = top.findIndex((n) => q.targets.includes(n)) + 1; // 0 = not in the top 10
    const para = isParaphrase(q);
    rows.all.push(rank);
    rows[para ? 'paraphrased' : 'literal'].push(rank);
    if (misses && (rank === 0 || rank > 5)) misses.push({ q: q.q, paraphrased: para, top: top.slice(0, 5), targets: q.targets });
  }
  const row = (ranks: number[]): QualityRow => ({
    queries: ranks.length,
    recallAt1: ranks.filter((r) => r === 1).length / ranks.length,
    recallAt5: ranks.filter((r) => r >= 1 && r <= 5).length / ranks.length,
    mrr: ranks.reduce((a, r) => a + (r > 0 ? 1 / r : 0), 0) / ranks.length,
  });
  return { all: row(rows.all), literal: row(rows.literal), paraphrased: row(rows.paraphrased) };
}

export async function measureSearch(): Promise<SearchBenchResult> {
  const heap0 = heap();
  const t0 = performance.now();
  const mod = await import('../src/core/tool-search/tool-search-index.js');
  const moduleLoadMs = performance.now() - t0;
  const moduleHeapBytes = heap() - heap0;

  const misses: SearchBenchResult['misses'] = [];
  const result = { bm25: quality(mod, false), concepts: quality(mod, true, misses) };

  const tb = performance.now();
  new mod.ToolSearchIndex().sync(groupsOf(fixture));
  const realBuildMs = performance.now() - tb;

  // 5,000 synthetic tools (plus the real ones, so the labelled queries have their answers in there).
  const groups = [...syntheticGroups(42), ...groupsOf(fixture)];
  const h1 = heap();
  const ts = performance.now();
  const big = new mod.ToolSearchIndex();
  big.sync(groups);
  const buildMs = performance.now() - ts;
  const indexHeapBytes = heap() - h1;
  const changed = groups.map((g, i) => (i === 0 ? { ...g, tools: syntheticGroups(7, 1)[0]!.tools } : g));
  const tu = performance.now();
  big.sync(changed);
  const updateMs = performance.now() - tu;
  const samples: number[] = [];
  for (let round = 0; round < 20; round++) {
    for (const q of labelled) {
      const t = performance.now();
      big.search(q.q, 5);
      samples.push(performance.now() - t);
    }
  }
  const sorted = sortNum(samples);
  // Baseline in the same run: the same searches on a BM25-only index of the same tools.
  const plain = new mod.ToolSearchIndex({ concepts: false });
  plain.sync(groups);
  const base: number[] = [];
  for (let round = 0; round < 20; round++) {
    for (const q of labelled) {
      const t = performance.now();
      plain.search(q.q, 5);
      base.push(performance.now() - t);
    }
  }

  const paraphrased = labelled.filter(isParaphrase).length;
  return {
    corpus: {
      servers: fixture.servers.map((s) => ({ server: s.server, package: s.package, version: s.version, tools: s.tools.length })),
      tools: toolByName.size,
    },
    queries: { total: labelled.length, paraphrased },
    quality: result,
    misses,
    cost: {
      moduleLoadMs,
      moduleHeapBytes,
      realBuildMs,
      synthetic: {
        tools: big.size,
        buildMs,
        indexHeapBytes,
        updateMs,
        searchP50Ms: percentile(sorted, 50),
        searchP95Ms: percentile(sorted, 95),
        baselineSearchP50Ms: percentile(sortNum(base), 50),
        searches: samples.length,
      },
    },
  };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').slice(-2).join('/'))) {
  measureSearch().then(
    (r) => process.stdout.write(`RESULT ${JSON.stringify(r)}\n`),
    (err: unknown) => {
      process.stdout.write(`ERROR ${JSON.stringify(String(err))}\n`);
      process.exitCode = 1;
    },
  );
}
