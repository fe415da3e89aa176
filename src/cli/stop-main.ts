/**
 * `mcp-warden stop` as a program of its own (cli-entry.ts loads it instead of the dispatcher):
 * the command, its process exit code, and the dispatcher's report of an unexpected error.
 * scripts/bundle.mjs bundles it into the single CommonJS file dist/bundle/stop.cjs, which bin/mcp-warden
 * runs directly for `stop`.
 */
import { runStop } from './stop-command.js';
import { exitPromptly } from './exit-promptly.js';

/** main.ts's exitCodes.internal: a bug; the stack trace follows the message. */
const INTERNAL_EXIT = 70;

runStop(process.argv.slice(3)).then(
  (code) => exitPromptly(code),
  (err: unknown) => {
    process.stderr.write(`mcp-warden: ${err instanceof Error ? err.message : String(err)}\n`);
    if (err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = INTERNAL_EXIT;
  },
);
