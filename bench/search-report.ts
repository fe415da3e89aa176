/** The "Tool search" section of BENCHMARKS.md, from bench/search.ts's result. */
import type { QualityRow, SearchBenchResult } from './search.js';
import type { SearchE2eResult } from './search-e2e.js';

const pct = (x: number) => x.toFixed(3);
const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;
const msf = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ms`;

export function renderSearch(
  r: SearchBenchResult | { error: string } | undefined,
  e2e: SearchE2eResult | { error: string } | undefined,
  selected: boolean,
): string[] {
  const L: string[] = ['## 7. Tool search (`retrieve_tools`)', ''];
  if (!selected) return [...L, 'Not run (section not selected).', ''];
  if (!r) return [...L, 'Not run.', ''];
  if ('error' in r) return [...L, `⚠ failed: ${r.error}`, ''];
  const row = (label: string, q: QualityRow) => `| ${label} | ${q.queries} | ${pct(q.recallAt1)} | ${pct(q.recallAt5)} | ${pct(q.mrr)} |`;
  const c = r.cost;
  L.push(
    `Corpus: the real tool lists of ${r.corpus.servers.length} MCP servers from npm, ${r.corpus.tools} tools ` +
      `(bench/search-tools.fixture.json: ${r.corpus.servers.map((s) => `${s.package}@${s.version} (${s.tools})`).join(', ')}).`,
    `${r.queries.total} labelled queries (bench/search-queries.json), ${r.queries.paraphrased} of them paraphrased: they share no ` +
      'content word (after our tokenising and stemming) with any of their target tools\u2019 name, server, description or parameters. ' +
      'A query may list several equally right tools (e.g. the GitHub and GitLab "create issue"); any of them is a hit.',
    '',
    '| ranking | queries | recall@1 | recall@5 | MRR |',
    '|---|---:|---:|---:|---:|',
    row('BM25 only, all queries (baseline)', r.quality.bm25.all),
    row('BM25 only, literal', r.quality.bm25.literal),
    row('BM25 only, paraphrased', r.quality.bm25.paraphrased),
    row('**BM25 + concept table, all queries** (what ships)', r.quality.concepts.all),
    row('BM25 + concept table, literal', r.quality.concepts.literal),
    row('BM25 + concept table, paraphrased', r.quality.concepts.paraphrased),
    '',
    `Cost, measured in a process of its own: loading the search code (MiniSearch and ours, only in search mode) ${msf(c.moduleLoadMs)} ` +
      `and ${mb(c.moduleHeapBytes)} heap; indexing the ${r.corpus.tools} real tools ${msf(c.realBuildMs)}.`,
    `With ${c.synthetic.tools} tools (5,000 synthetic ones, 100 servers × 50, made from the real tools\u2019 words, plus the real ones): ` +
      `index build ${msf(c.synthetic.buildMs)}, index heap ${mb(c.synthetic.indexHeapBytes)}, re-indexing one server\u2019s 50 tools ` +
      `(a list_changed) ${msf(c.synthetic.updateMs)}; a search (what one retrieve_tools call does after its sync) p50 ${msf(c.synthetic.searchP50Ms)}, ` +
      `p95 ${msf(c.synthetic.searchP95Ms)} over ${c.synthetic.searches} searches (the labelled queries, 20 rounds); ` +
      `the same searches on a BM25-only index (baseline, same run): p50 ${msf(c.synthetic.baselineSearchP50Ms)} ` +
      `(×${(c.synthetic.searchP50Ms / c.synthetic.baselineSearchP50Ms).toFixed(1)} for the concept table).`,
    '',
  );
  if (e2e && 'error' in e2e) L.push(`Through the daemon: ⚠ failed: ${e2e.error}`, '');
  else if (e2e) {
    const kib = (k: number | undefined) => (k === undefined ? '?' : `${(k / 1024).toFixed(0)} MB`);
    L.push(
      `Through the daemon (\`mcp-warden serve\`, ${e2e.servers} upstreams of the file-tools fixture, ${e2e.tools} tools, a client on ` +
        `\`/mcp?toolMode=search\`):`,
      '',
      '| measure | value |',
      '|---|---:|',
      `| retrieve_tools p50 / p95 (${e2e.retrieves} calls, limit 5) | ${msf(e2e.retrieveP50Ms)} / ${msf(e2e.retrieveP95Ms)} |`,
      `| first retrieve_tools (loads the search code, indexes every tool) | ${msf(e2e.firstRetrieveMs)} |`,
      `| baseline: tools/list of every tool on \`?toolMode=all\`, p50 | ${msf(e2e.listAllP50Ms)} |`,
      `| answer size: tools/list of every tool / largest retrieve_tools | ${(e2e.listAllBytes / 1024).toFixed(0)} KiB / ${(e2e.retrieveBytes / 1024).toFixed(1)} KiB |`,
      `| daemon RSS before the first search session / after its index is built | ${kib(e2e.rssBeforeKiB)} / ${kib(e2e.rssAfterKiB)} |`,
      '',
    );
  }
  if (r.misses.length > 0) {
    L.push('Queries whose answer was not in the top 5 (BM25 + concepts):', '');
    for (const m of r.misses)
      L.push(`- ${m.paraphrased ? '(paraphrased) ' : ''}"${m.q}" → ${m.top.slice(0, 3).join(', ')} (wanted ${m.targets.join(' or ')})`);
    L.push('');
  }
  return L;
}
