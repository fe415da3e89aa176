/**
 * The config file written on first run: one `demo` server (the bundled demo MCP server run by the
 * current Node binary) and an empty `settings` object, so every default from src/core/settings.ts applies.
 */
import { join } from 'node:path';
import { packageRoot } from '../core/package-root.js';

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
 * Absolute path of the compiled demo server, `dist/src/demo/demo-server.js`, from the package root
 * (this module runs from dist/src/config/ or from the bundle in dist/bundle/).
 */
export function resolveDemoServerPath(): string {
  return join(packageRoot(), 'dist', 'src', 'demo', 'demo-server.js');
}
