/** Defaults the CLI needs before it loads anything heavy (so `status`, `stop` and a losing `serve` start fast). */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_PORT = 7374;
export const DEFAULT_HOST = '127.0.0.1';
/** Where `serve --inspect` sends the actor system by default: the Stately inspector relay's default. */
export const DEFAULT_INSPECT_URL = 'ws://localhost:8080';
/** The data dir when none is given: `$MCP_WARDEN_HOME`, else `~/.mcp-warden`. */
export function defaultDataDir(): string {
  return process.env.MCP_WARDEN_HOME || join(homedir(), '.mcp-warden');
}
