/**
 * Where the installed package lives, and the paths of the programs mcp-warden launches itself.
 * A module may run from dist/src/... (tsc output, imported by tests) or from the bundle in
 * dist/bundle/ (what `mcp-warden` runs: scripts/bundle.mjs), at different depths, so paths are
 * found from the package root (the first directory above this module with a package.json)
 * rather than relative to `import.meta.url`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  root = dir;
  return root;
}

/** The bundled CLI, the program users run (package.json `bin`). */
export function cliBundlePath(): string {
  return join(packageRoot(), 'dist', 'bundle', 'cli.js');
}

/** The bundled watchdog (src/watchdog/watchdog-main.ts), spawned by every daemon. */
export function watchdogBundlePath(): string {
  return join(packageRoot(), 'dist', 'bundle', 'watchdog.js');
}
