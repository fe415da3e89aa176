// Runs every compiled test file under dist/test with node's own runner, in two phases:
//  1. "exclusive" files, one at a time, alone: they SIGKILL daemons and leave orphans on purpose for
//     the watchdog or the next start to reap — and every daemon start reaps dead daemons' leftovers
//     machine-wide, so a test running beside them could reap their orphans first;
//  2. every other file, two at a time.
//  3. the exclusive files again with MCP_WARDEN_PROCESS_TABLE=portable: every daemon, watchdog and
//     test helper then reads processes with ps/pgrep/lsof instead of /proc (the macOS path,
//     src/adapters/process/process-table.ts), so the orphan, watchdog, reaper and single-instance
//     guarantees are proven on both tables. MCP_WARDEN_PORTABLE_PASS=0 leaves it out (local use).
// It ends with one combined line over all phases, `total: N passed, N failed, N skipped`.
// MCP_WARDEN_TEST_FILTER=substring narrows the files (local use only).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const EXCLUSIVE = /(orphan-suite|docker-daemon|watchdog|single-instance)\.test\.js$/;

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

const totals = { pass: 0, fail: 0, skipped: 0, cancelled: 0 };

function runPhase(label, list, concurrency, env = process.env) {
  if (list.length === 0) return Promise.resolve(0);
  console.log(`\n=== ${label}: ${list.length} file(s), concurrency ${concurrency} ===`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...list], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    });
    // The counts are read from the runner's `ℹ <key> N` summary lines as they stream by: a failing
    // run prints its long "failing tests" recap after them, so a fixed-size tail could miss them.
    const counts = {};
    let partial = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        const m = /^ℹ (\w+) (\d+)$/.exec(line);
        if (m && m[1] in totals) counts[m[1]] = Number(m[2]);
      }
    });
    child.on('close', (code) => {
      for (const key of Object.keys(totals)) totals[key] += counts[key] ?? 0;
      resolve(code ?? 1);
    });
  });
}

const exclusive = selected.filter((f) => EXCLUSIVE.test(f));
const shared = selected.filter((f) => !EXCLUSIVE.test(f));
const c1 = await runPhase('exclusive phase (tests that leave orphans on purpose)', exclusive, 1);
const c2 = await runPhase('shared phase', shared, process.env.MCP_WARDEN_TEST_CONCURRENCY ?? '2');
const portablePass = process.env.MCP_WARDEN_PORTABLE_PASS !== '0' && process.env.MCP_WARDEN_PROCESS_TABLE !== 'portable';
const c3 = portablePass
  ? await runPhase('exclusive phase again on the portable process table (ps, pgrep, lsof)', exclusive, 1, {
      ...process.env,
      MCP_WARDEN_PROCESS_TABLE: 'portable',
    })
  : 0;
console.log(`\ntotal: ${totals.pass} passed, ${totals.fail + totals.cancelled} failed, ${totals.skipped} skipped`);
process.exit(c1 !== 0 || c2 !== 0 || c3 !== 0 ? 1 : 0);
