/**
 * Bundles the two programs users run from the tsc output (dist/src) into dist/bundle/
 * (docs/benchmarks.md, "Start-up and the bundle"):
 *   dist/bundle/cli.js       the CLI (package.json `bin`), ESM with code splitting: each command and
 *                            the daemon half stay lazily loaded chunks, as in src/cli/main.ts
 *   dist/bundle/watchdog.js  the watchdog (src/watchdog/watchdog-main.ts), one file: it is on the
 *                            daemon's start-up path (no server starts before it is armed)
 * Loading one minified file instead of ~300 modules is what makes `serve` start fast. Output is ASCII
 * (esbuild escapes the rest), so V8 keeps the sources as one-byte strings. Run by `npm run build`.
 */
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');

// CommonJS dependencies call require() for node builtins; an ESM bundle has no require of its own.
const banner = {
  js: "import { createRequire as __wardenCreateRequire } from 'node:module';\nconst require = __wardenCreateRequire(import.meta.url);",
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  charset: 'ascii',
  legalComments: 'none',
  banner,
  logLevel: 'warning',
  // Optional native add-ons that ws looks for inside try/catch; never installed here.
  external: ['bufferutil', 'utf-8-validate'],
};

rmSync(outdir, { recursive: true, force: true });
const [cli, watchdog] = await Promise.all([
  build({
    ...common,
    entryPoints: { cli: join(root, 'dist', 'src', 'cli', 'main.js') },
    outdir,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    metafile: true,
  }),
  build({ ...common, entryPoints: { watchdog: join(root, 'dist', 'src', 'watchdog', 'watchdog-main.js') }, outdir, metafile: true }),
]);

// The watchdog starts itself when its module is the program run (import.meta.url is argv[1]): its
// code must never land in the CLI's entry file, where that check would hold for the CLI.
if (readFileSync(join(outdir, 'cli.js'), 'utf8').includes('watchdog crashed')) {
  throw new Error('scripts/bundle.mjs: the watchdog module ended up in dist/bundle/cli.js');
}
if (process.argv.includes('--report')) {
  for (const [name, result] of [
    ['cli', cli],
    ['watchdog', watchdog],
  ]) {
    for (const [file, out] of Object.entries(result.metafile.outputs)) {
      if (file.endsWith('.js')) process.stdout.write(`${name}: ${file} ${out.bytes} bytes, ${Object.keys(out.inputs).length} modules\n`);
    }
  }
}
