/** Paths of the built project, resolved from dist/bench/lib/. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** The bundled CLI users run (package.json `bin`; scripts/bundle.mjs). */
export const CLI_MAIN = join(DIST, 'bundle', 'cli.js');
/** The `mcp-warden` command itself (package.json `bin`): a shell launcher that runs CLI_MAIN with `node` from PATH. */
export const CLI_BIN = join(REPO, 'bin', 'mcp-warden');
export const ECHO_FIXTURE = join(DIST, 'test', 'fixtures', 'echo-server.js');
export const IGNORE_EOF_FIXTURE = join(DIST, 'test', 'fixtures', 'ignore-eof-server.js');
export const EVERYTHING_SERVER = join(REPO, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
export const BARE_HTTP_SERVER = join(DIST, 'bench', 'bare-http-server.js');
export const NO_PROXY_SPAWN = join(DIST, 'bench', 'no-proxy-spawn.js');
export const CHURN = join(DIST, 'bench', 'churn.js');
export const SEARCH_BENCH = join(DIST, 'bench', 'search.js');
export const LOOPBACK_PRELOAD = join(DIST, 'bench', 'peers', 'loopback-preload.js');
export const WATCHDOG_MAIN = join(DIST, 'bundle', 'watchdog.js');
export const PEERS_DIR = join(REPO, '.bench', 'peers');
export const LEAN_HTTP_SERVER = join(DIST, 'bench', 'lean-http-server.js');
export const FILE_TOOLS_FIXTURE = join(DIST, 'test', 'fixtures', 'file-tools-server.js');
