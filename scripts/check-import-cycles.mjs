#!/usr/bin/env node
/**
 * Fails (exit 1) when any import cycle exists between the project's own files, and prints each one
 * as a chain of files. Part of `npm run lint`.
 *
 * Scans src/, test/, bench/, scripts/ and visualizer/ (.ts, .mts, .cts, .js, .mjs, .cjs). Every way
 * one module names another counts, type-only ones included, because a cycle of types is still a
 * cycle of knowledge between the two files:
 *   import x from './a.js'          import type { T } from './a.js'     import './a.js'
 *   export { x } from './a.js'      export type { T } from './a.js'     export * from './a.js'
 *   await import('./a.js')          type T = import('./a.js').T         require('./a.js')
 * Files are parsed with the TypeScript compiler's parser (the `typescript` devDependency), so
 * import-looking text inside comments or strings is not an import. Only string-literal relative
 * specifiers are followed; './a.js' resolves to a.ts (nodenext style), and a specifier that points
 * into dist/ resolves to the source file it is compiled from.
 *
 *   node scripts/check-import-cycles.mjs          # check, print cycles
 *   node scripts/check-import-cycles.mjs --graph  # also print every edge
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIRS = ['src', 'test', 'bench', 'scripts', 'visualizer'];
const EXTS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'];
const SKIP = new Set(['node_modules', 'dist', '.bench', '.git']);

/** @param {string} dir @returns {string[]} absolute paths */
function walk(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else if (EXTS.includes(extname(entry.name)) && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const files = DIRS.flatMap((d) => walk(join(root, d))).sort();
const known = new Set(files);
const rel = (p) => relative(root, p).split(sep).join('/');

/** './a.js' from /x/b.ts -> /x/a.ts (or whatever source file exists), or undefined if not ours. */
function resolveSpecifier(fromFile, spec) {
  if (!spec.startsWith('./') && !spec.startsWith('../')) return undefined;
  let target = resolve(dirname(fromFile), spec);
  const distRoot = join(root, 'dist') + sep;
  if (target.startsWith(distRoot)) {
    // dist/visualizer/x.js comes from visualizer/src/x.ts; dist/<p>.js from <p>.ts.
    const inner = target.slice(distRoot.length);
    target = inner.startsWith('visualizer' + sep)
      ? join(root, 'visualizer', 'src', inner.slice('visualizer'.length + 1))
      : join(root, inner);
  }
  const base = target.replace(/\.(m|c)?js$/, '');
  const mapped = { '.js': '.ts', '.mjs': '.mts', '.cjs': '.cts' }[extname(target)];
  const candidates = [target, mapped && base + mapped, target + '.ts', target + '.js', join(target, 'index.ts'), join(target, 'index.js')];
  for (const c of candidates) if (c && known.has(c) && statSync(c).isFile()) return c;
  return undefined;
}

/** @returns {{ spec: string, typeOnly: boolean }[]} */
function specifiersOf(file) {
  const text = readFileSync(file, 'utf8');
  const kind = /\.[mc]?js$/.test(file) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const out = [];
  const literal = (node) => (node && ts.isStringLiteralLike(node) ? node.text : undefined);
  const visit = (node) => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const typeOnly =
        !!clause &&
        (clause.isTypeOnly ||
          (!clause.name &&
            !!clause.namedBindings &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      out.push({ spec: literal(node.moduleSpecifier), typeOnly });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      out.push({ spec: literal(node.moduleSpecifier), typeOnly: node.isTypeOnly });
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      out.push({ spec: literal(node.moduleReference.expression), typeOnly: node.isTypeOnly });
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      if (ts.isLiteralTypeNode(arg)) out.push({ spec: literal(arg.literal), typeOnly: true });
    } else if (ts.isCallExpression(node)) {
      const isImport = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      if ((isImport || isRequire) && node.arguments.length > 0) out.push({ spec: literal(node.arguments[0]), typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out.filter((s) => s.spec !== undefined);
}

/** file -> Map(target -> typeOnly for every import of target from file) */
const graph = new Map();
for (const file of files) {
  const edges = new Map();
  for (const { spec, typeOnly } of specifiersOf(file)) {
    const target = resolveSpecifier(file, spec);
    if (!target) continue;
    edges.set(target, (edges.get(target) ?? true) && typeOnly);
  }
  graph.set(file, edges);
}

if (process.argv.includes('--graph')) {
  for (const [from, edges] of graph)
    for (const [to, typeOnly] of edges) console.log(`${rel(from)} -> ${rel(to)}${typeOnly ? ' (type)' : ''}`);
}

// Tarjan's strongly connected components (iterative, so deep graphs cannot overflow the stack).
const index = new Map();
const low = new Map();
const onStack = new Set();
const stack = [];
const components = [];
let counter = 0;
for (const start of files) {
  if (index.has(start)) continue;
  const work = [[start, [...graph.get(start).keys()], 0]];
  index.set(start, counter);
  low.set(start, counter++);
  stack.push(start);
  onStack.add(start);
  while (work.length > 0) {
    const frame = work[work.length - 1];
    const [node, succ] = frame;
    if (frame[2] < succ.length) {
      const next = succ[frame[2]++];
      if (!index.has(next)) {
        index.set(next, counter);
        low.set(next, counter++);
        stack.push(next);
        onStack.add(next);
        work.push([next, [...graph.get(next).keys()], 0]);
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node), index.get(next)));
      }
      continue;
    }
    work.pop();
    if (work.length > 0) {
      const parent = work[work.length - 1][0];
      low.set(parent, Math.min(low.get(parent), low.get(node)));
    }
    if (low.get(node) === index.get(node)) {
      const component = [];
      let member;
      do {
        member = stack.pop();
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || graph.get(node).has(node)) components.push(component.sort());
    }
  }
}

/** Shortest cycle through `from` inside the component (BFS), as a list of files ending at `from`. */
function shortestCycle(from, members) {
  const inside = new Set(members);
  const prev = new Map();
  const queue = [from];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i];
    for (const next of graph.get(node).keys()) {
      if (!inside.has(next)) continue;
      if (next === from) {
        const path = [from];
        for (let n = node; n !== from; n = prev.get(n)) path.splice(1, 0, n);
        return [...path, from];
      }
      if (!prev.has(next)) {
        prev.set(next, node);
        queue.push(next);
      }
    }
  }
  return [from, from];
}

const chain = (path) =>
  path.map((f, i) => (i === 0 ? rel(f) : `${graph.get(path[i - 1]).get(f) ? '-(type)->' : '->'} ${rel(f)}`)).join(' ');

if (components.length === 0) {
  console.log(`check-import-cycles: no import cycle among ${files.length} files (${DIRS.join(', ')})`);
  process.exit(0);
}
console.error(`check-import-cycles: ${components.length} import cycle group(s) among ${files.length} files:`);
for (const component of components) {
  console.error(`\n  ${component.length} files: ${component.map(rel).join(', ')}`);
  const covered = new Set();
  for (const member of component) {
    if (covered.has(member)) continue;
    const cycle = shortestCycle(member, component);
    cycle.forEach((f) => covered.add(f));
    console.error(`    ${chain(cycle)}`);
  }
}
console.error('\nBreak each cycle (type-only imports count too: move the shared types to a file both can import).');
process.exit(1);
