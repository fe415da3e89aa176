/**
 * Bundles the two programs users run from the tsc output (dist/src) into dist/bundle/
 * (docs/benchmarks.md, "Start-up and the bundle"):
 *   dist/bundle/cli.js       the CLI (package.json `bin`, src/cli/cli-entry.ts), ESM with code splitting:
 *                            the dispatcher, each command and the daemon half stay lazily loaded
 *                            chunks, as in src/cli/main.ts
 *   dist/bundle/stop.cjs     `mcp-warden stop` (src/cli/stop-main.ts), one CommonJS file: bin/mcp-warden
 *                            runs it directly for that command (and cli.js imports it when run itself):
 *                            no dispatcher, no chunk graph, and no ES module loader to start (~10 ms)
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

/**
 * Two substitutions of dependency modules that are loaded by every daemon but whose work no idle
 * daemon needs (docs/building-blocks.md, "The bundle"):
 * - zod's locales (a quarter of a MiB of error-message tables in 40+ languages) are re-exported as a
 *   namespace, so no tree-shaking drops them; we only ever use English, which zod configures itself
 *   (classic/schemas.js imports locales/en.js directly). The `locales` namespace keeps only `en`.
 * - The MCP SDK's Client and Server import ajv and ajv-formats (validation/ajv-provider.js) to build
 *   their default validator; ours pass a pass-through one (src/adapters/mcp/pass-through-schema-validator.ts),
 *   yet ajv's modules (~100 KiB of CommonJS) still ran at import. The replacement builds the same
 *   default instance, lazily: ajv's code runs with the first schema compiled by a default validator.
 * A dependency update that changes either module fails the build here instead of silently
 * changing behaviour.
 */
const lazyAjvProvider = `
let modules;
function createDefaultAjvInstance() {
  modules ??= { Ajv: require('ajv').default, addFormats: require('ajv-formats').default };
  const ajv = new modules.Ajv({ strict: false, validateFormats: true, validateSchema: false, allErrors: true });
  modules.addFormats(ajv);
  return ajv;
}
export class AjvJsonSchemaValidator {
  constructor(ajv) {
    this._given = ajv;
  }
  get _ajv() {
    return (this._built ??= this._given ?? createDefaultAjvInstance());
  }
  getValidator(schema) {
    const ajvValidator =
      '$id' in schema && typeof schema.$id === 'string' ? (this._ajv.getSchema(schema.$id) ?? this._ajv.compile(schema)) : this._ajv.compile(schema);
    return (input) =>
      ajvValidator(input)
        ? { valid: true, data: input, errorMessage: undefined }
        : { valid: false, data: undefined, errorMessage: this._ajv.errorsText(ajvValidator.errors) };
  }
}
`;

function expectSource(file, fragments) {
  const text = readFileSync(file, 'utf8');
  for (const f of fragments) {
    if (!text.includes(f)) throw new Error(`scripts/bundle.mjs: ${file} changed (no "${f}"); review the substitution`);
  }
}

const substitutions = {
  name: 'warden-substitutions',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => {
      expectSource(args.path, ['export { default as en } from "./en.js";']);
      return { contents: 'export { default as en } from "./en.js";\n', resolveDir: dirname(args.path), loader: 'js' };
    });
    b.onLoad({ filter: /[\\/]@modelcontextprotocol[\\/]sdk[\\/]dist[\\/]esm[\\/]validation[\\/]ajv-provider\.js$/ }, (args) => {
      expectSource(args.path, [
        "import Ajv from 'ajv';",
        "import _addFormats from 'ajv-formats';",
        'strict: false,\n        validateFormats: true,\n        validateSchema: false,\n        allErrors: true',
        'export class AjvJsonSchemaValidator {',
        'getValidator(schema) {',
      ]);
      return { contents: lazyAjvProvider, resolveDir: dirname(args.path), loader: 'js' };
    });
  },
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
  plugins: [substitutions],
};

/** cli.js imports the stop program as the separately built stop.cjs, not as a chunk of its own graph. */
const stopApart = {
  name: 'warden-stop-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/stop-main\.js$/ }, (args) =>
      args.importer.endsWith(join('cli', 'cli-entry.js')) ? { path: './stop.cjs', external: true } : undefined,
    );
  },
};

rmSync(outdir, { recursive: true, force: true });
const [cli, watchdog, stop] = await Promise.all([
  build({
    ...common,
    plugins: [...common.plugins, stopApart],
    entryPoints: { cli: join(root, 'dist', 'src', 'cli', 'cli-entry.js') },
    outdir,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    metafile: true,
  }),
  build({ ...common, entryPoints: { watchdog: join(root, 'dist', 'src', 'watchdog', 'watchdog-main.js') }, outdir, metafile: true }),
  // CommonJS: Node runs a .cjs program through the CommonJS loader, which its start-up has ready, where an
  // ES module program first starts the ES module loader. import.meta.url (createRequire of lazily loaded
  // builtins) is this file's URL, as in the ES module bundles.
  build({
    ...common,
    format: 'cjs',
    banner: { js: "const __wardenImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__wardenImportMetaUrl' },
    entryPoints: { stop: join(root, 'dist', 'src', 'cli', 'stop-main.js') },
    outExtension: { '.js': '.cjs' },
    outdir,
    metafile: true,
  }),
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
    ['stop', stop],
  ]) {
    for (const [file, out] of Object.entries(result.metafile.outputs)) {
      if (file.endsWith('.js')) process.stdout.write(`${name}: ${file} ${out.bytes} bytes, ${Object.keys(out.inputs).length} modules\n`);
    }
  }
}
