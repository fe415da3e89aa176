/** Synthetic tool lists for the tool-search benchmark: made from the words of the real fixture's tools. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './lib/paths.js';
import { rng } from './lib/stats.js';
import type { CatalogTool, ToolGroup } from '../src/core/tool-catalog.js';

const fixture = JSON.parse(readFileSync(join(REPO, 'bench', 'search-tools.fixture.json'), 'utf8')) as {
  servers: Array<{ tools: CatalogTool[] }>;
};

/** `servers` × `perServer` tools with shuffled real names, descriptions and input schemas (deterministic per seed). */
export function syntheticGroups(seed: number, servers = 100, perServer = 50): ToolGroup[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const real = fixture.servers.flatMap((s) => s.tools);
  const verbs = ['get', 'list', 'create', 'update', 'delete', 'search', 'read', 'write', 'send', 'open', 'close', 'sync', 'export'];
  const nouns = [...new Set(real.flatMap((t) => t.name.split(/[_-]/)).filter((w) => w.length > 3))];
  const sentences = real.map((t) => (t.description ?? '').split('. ')[0]!).filter(Boolean);
  const groups: ToolGroup[] = [];
  for (let s = 0; s < servers; s++) {
    const tools: CatalogTool[] = [];
    for (let i = 0; i < perServer; i++) {
      tools.push({
        name: `${pick(verbs)}_${pick(nouns)}_${pick(nouns)}_${i}`,
        description: `${pick(sentences)}. ${pick(sentences)}.`,
        inputSchema: pick(real).inputSchema,
      });
    }
    groups.push({ server: `svc${s}`, tools, pinned: [] });
  }
  return groups;
}
