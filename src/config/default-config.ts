/**
 * The config file written on first run: one `demo` server (the bundled demo MCP server run by the
 * current Node binary) and an empty `settings` object, so every default from src/core/settings.ts applies.
 */
import { fileURLToPath } from 'node:url';

export interface DefaultConfigFile {
  mcpServers: { demo: { command: string; args: string[] } };
  settings: Record<string, never>;
}

export function makeDefaultConfig(opts: { nodePath: string; demoServerPath: string }): DefaultConfigFile {
  return {
    mcpServers: {
      demo: { command: opts.nodePath, args: [opts.demoServerPath] },
    },
    settings: {},
  };
}

/**
 * Absolute path of the compiled demo server, `dist/src/demo/demo-server.js`, computed from this
 * module's own location (it compiles to `dist/src/config/default-config.js`).
 */
export function resolveDemoServerPath(): string {
  return fileURLToPath(new URL('../demo/demo-server.js', import.meta.url));
}
