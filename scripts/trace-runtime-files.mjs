#!/usr/bin/env node
/**
 * Prints (one per line, relative to the project root) every file Node loads when the given MCP stdio
 * servers run a full session: initialize, tools/list, one tools/call, stdin EOF. Used by
 * build-test-image.sh to copy the smallest working set of node_modules into the test image.
 *
 * ESM modules are recorded by a module.register() load hook, CommonJS modules from require.cache at
 * exit; every package.json in an ancestor directory of a loaded file is added (Node reads them for
 * "type" and "exports"). Usage: trace-runtime-files.mjs <root> <entry.js>[:<tool>:<json args>] ...
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [rootArg, ...entries] = process.argv.slice(2);
if (!rootArg || entries.length === 0) {
  console.error('usage: trace-runtime-files.mjs <root> <entry.js>[:<tool>:<json args>] ...');
  process.exit(2);
}
const root = resolve(rootArg);
const work = mkdtempSync(join(tmpdir(), 'mcp-warden-trace-'));
const out = join(work, 'loaded.txt');
const hooks = join(work, 'hooks.mjs');
const register = join(work, 'register.mjs');
writeFileSync(
  hooks,
  `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  const r = await next(url, context);
  if (url.startsWith('file:')) appendFileSync(${JSON.stringify(out)}, url + '\\n');
  return r;
}
`,
);
writeFileSync(
  register,
  `import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
register(${JSON.stringify(pathToFileURL(hooks).href)});
const req = createRequire(import.meta.url);
process.on('exit', () => {
  const files = Object.keys(req.cache).map((f) => pathToFileURL(f).href);
  appendFileSync(${JSON.stringify(out)}, files.join('\\n') + '\\n');
});
`,
);

function session(entry, tool, args) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', pathToFileURL(register).href, entry], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // stderr is only shown when the session fails.
    let stderr = '';
    child.stderr.on('data', (c) => {
      if (stderr.length < 64_000) stderr += c;
    });
    const fail = (err) => {
      if (stderr) process.stderr.write(stderr);
      reject(err);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`${entry}: no clean session within 20 s`));
    }, 20_000);
    let buf = '';
    const send = (m) => child.stdin.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\n');
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg;
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (msg.id === 1) {
          send({ method: 'notifications/initialized' });
          send({ id: 2, method: 'tools/list', params: {} });
        } else if (msg.id === 2) {
          send({ id: 3, method: 'tools/call', params: { name: tool, arguments: args } });
        } else if (msg.id === 3) {
          if (msg.error || msg.result?.isError) {
            fail(new Error(`${entry}: tools/call ${tool} failed: ${JSON.stringify(msg.error ?? msg.result)}`));
          }
          child.stdin.end();
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Servers that ignore EOF on purpose (hostile fixtures) are killed: their files are loaded by now.
      if (code === 0 || signal === 'SIGTERM') resolvePromise();
      else fail(new Error(`${entry}: exited with ${code ?? signal}`));
    });
    child.stdin.on('error', () => undefined);
    send({
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'trace', version: '0' } },
    });
    setTimeout(() => {
      if (child.exitCode === null) child.kill('SIGTERM');
    }, 5_000).unref();
  });
}

try {
  for (const spec of entries) {
    const [entry, tool = 'echo', ...rest] = spec.split(':');
    const argsJson = rest.length > 0 ? rest.join(':') : '{"text":"trace"}';
    await session(resolve(root, entry), tool, JSON.parse(argsJson));
  }
  const files = new Set();
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    if (!line.startsWith('file:')) continue;
    const file = fileURLToPath(line);
    if (!file.startsWith(root + sep) || !existsSync(file)) continue;
    files.add(relative(root, file));
    // package.json in every ancestor directory up to the root ("type", "exports", "main").
    for (let dir = dirname(file); dir.startsWith(root); dir = dirname(dir)) {
      const pj = join(dir, 'package.json');
      if (existsSync(pj)) files.add(relative(root, pj));
      if (dir === root) break;
    }
  }
  process.stdout.write([...files].sort().join('\n') + '\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}
