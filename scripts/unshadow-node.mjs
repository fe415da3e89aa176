// Root `postinstall`: removes node_modules/.bin/node, the link that the `node` devDependency (Node 22,
// only for the conformance suite in test/integration/conformance.test.ts) installs. npm puts
// node_modules/.bin first on PATH for every script, so with the link in place `npm run build`,
// `npm test` and test/run-tests.mjs would all run under Node 22 instead of the machine's Node, and npm
// has no per-package switch for bin links (an alias such as `node22@npm:node@…` links `node` too).
// The conformance test runs Node 22 by its path in node_modules/node/bin/ instead.
import { lstatSync, readlinkSync, unlinkSync } from 'node:fs';

const link = new URL('../node_modules/.bin/node', import.meta.url);
let target;
try {
  if (lstatSync(link).isSymbolicLink()) target = readlinkSync(link);
} catch {
  // No link: nothing installed it.
}
// Only the link into the `node` package: anything else there was put by someone on purpose.
if (target !== undefined && /(^|[/\\])node[/\\]bin[/\\]node(\.exe)?$/.test(target)) {
  unlinkSync(link);
  console.log('unshadow-node: removed node_modules/.bin/node (Node 22 stays at node_modules/node/bin/node)');
}
