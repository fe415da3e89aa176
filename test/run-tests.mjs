// Runs every compiled test file under dist/test with node's own runner.
// MCP_WARDEN_TEST_FILTER=substring narrows the files (local use only).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
})(root);
const filter = process.env.MCP_WARDEN_TEST_FILTER;
const selected = files.filter((f) => !filter || f.includes(filter)).sort();
if (selected.length === 0) {
  console.error('no test files found under dist/test');
  process.exit(1);
}
const concurrency = process.env.MCP_WARDEN_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...selected], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
