#!/usr/bin/env node
/**
 * The program `mcp-warden` runs (package.json `bin`, bundled as dist/bundle/cli.js). It imports
 * nothing itself: `stop` loads only its own code (stop-main.ts, one file of the bundle), because its
 * wall time is what a user waits for after asking the daemon to stop (docs/benchmarks.md, "Stop");
 * every other command loads the dispatcher (main.ts).
 */
if (process.argv[2] === 'stop') await import('./stop-main.js');
else await import('./main.js');
