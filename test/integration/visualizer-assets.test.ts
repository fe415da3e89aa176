/**
 * The visualizer's server side without a browser: the daemon serves exactly the page's files (right
 * content types, no-cache + ETag/304, CSP, Host check, no directory traversal, a clear 503 when the
 * page is not built); the snapshot's machine definition carries the eventless transitions; and
 * `mcp-warden ui` prints the `#token=` URL, opens it with xdg-open, or says that it cannot.
 * (The page itself in a real browser: test/browser/visualizer.test.ts.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startHttpServer } from '../../src/adapters/http/http-server.js';
import { registerVisualizer } from '../../src/adapters/http/visualizer-assets.js';
import { ResourceLedger } from '../../src/core/resource-ledger.js';
import { connectControl } from '../../src/control/control-client.js';
import { cliMain, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { waitFor } from '../helpers/leak-check.js';

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A raw request: the path is sent exactly as given (no normalisation by a URL parser). */
function get(base: string, path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Res> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function runCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliMain, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('visualizer: served files, machine definition, `mcp-warden ui`', () => {
  let td: TestDaemon;
  let base = '';
  let token = '';
  let scratch = '';

  before(async () => {
    td = await startTestDaemon({});
    base = td.daemon.url;
    token = (await readFile(join(td.dataDir, 'token'), 'utf8')).trim();
    scratch = await mkdtemp(join(tmpdir(), 'mcp-warden-ui-cli-'));
  });

  after(async () => {
    await td?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('serves the page, its stylesheet and its modules with the right types and headers', async () => {
    const page = await get(base, '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${new URL(base).port}`));
    assert.match(page.body, /<script type="module" src="app\.js"><\/script>/);
    assert.ok(page.headers.etag);

    const again = await get(base, '/', { headers: { 'if-none-match': String(page.headers.etag) } });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');

    const head = await get(base, '/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');

    const css = await get(base, '/app.css');
    assert.equal(css.status, 200);
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
    assert.match(css.body, /prefers-color-scheme: dark/);

    for (const mod of ['/app.js', '/connection.js', '/statechart.js', '/dom.js', '/format.js']) {
      const r = await get(base, mod);
      assert.equal(r.status, 200, mod);
      assert.equal(r.headers['content-type'], 'text/javascript; charset=utf-8', mod);
      assert.equal(r.headers['cache-control'], 'no-cache', mod);
    }
    // Every relative import of the page's modules is served.
    const app = (await get(base, '/app.js')).body;
    for (const m of app.matchAll(/from '\.\/([a-z-]+\.js)'/g)) assert.equal((await get(base, `/${m[1]}`)).status, 200, m[1]);

    assert.equal((await get(base, '/', { method: 'POST' })).status, 405);
  });

  it('serves nothing else: no directory traversal, no source files', async () => {
    for (const path of [
      '/../package.json',
      '/%2e%2e/package.json',
      '/..%2fpackage.json',
      '/app.js/../../package.json',
      '/visualizer/static/index.html',
      '/dist/visualizer/app.js',
      '/static/app.css',
      '/index.html/',
      '//etc/passwd',
      '/app.ts',
      '/tsconfig.json',
      '/token',
    ]) {
      const r = await get(base, path);
      assert.equal(r.status, 404, `${path} → ${r.status}`);
      assert.ok(!r.body.includes(token));
    }
  });

  it('refuses a Host it is not reachable as (DNS rebinding)', async () => {
    const r = await get(base, '/', { headers: { host: 'evil.example:80' } });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error.code, 'E_FORBIDDEN_HOST');
    assert.equal((await get(base, '/', { headers: { host: `localhost:${new URL(base).port}` } })).status, 200);
  });

  it('says so when the page is not built (503 with a hint), instead of a blank page', async () => {
    const ledger = new ResourceLedger();
    const http = await startHttpServer({ host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }), ledger, maxBodyBytes: 1024 });
    try {
      const paths = registerVisualizer(http, { logger: pino({ level: 'silent' }), scriptDir: join(scratch, 'not-built') });
      assert.deepEqual(paths.sort(), ['/', '/app.css', '/app.js']);
      const r = await get(http.url, '/app.js');
      assert.equal(r.status, 503);
      assert.match(r.body, /npm run build/);
      assert.equal((await get(http.url, '/')).status, 200);
    } finally {
      await http.close();
    }
  });

  it('the snapshot machine definition includes the eventless (always) transitions', async () => {
    const client = await connectControl({ url: td.daemon.controlUrl, token });
    try {
      /* eslint-disable @typescript-eslint/no-explicit-any -- xstate's serialized machine JSON, read by path */
      const machine = client.snapshot.machine as any;
      assert.equal(machine.id, 'server');
      const check = machine.states.starting.states.check;
      assert.deepEqual(
        check.always.map((t: any) => [t.guard ?? null, t.target]),
        [[null, ['#server.starting.launching']]],
      );
      const settled = machine.states.reaping.states.settled;
      assert.deepEqual(
        settled.always.map((t: any) => t.target[0]),
        ['#server.stopped', '#server.starting.check', '#server.starting.needsAuth', '#server.starting.halted', '#server.starting.backoff'],
      );
      // Event transitions are still there as xstate writes them.
      assert.ok(machine.states.running.transitions.some((t: any) => t.eventType === 'RESTART'));
      /* eslint-enable @typescript-eslint/no-explicit-any */
    } finally {
      await client.close();
    }
  });

  it('`mcp-warden ui` prints the #token= URL (and --json)', async () => {
    const r = await runCli(['ui', '--data-dir', td.dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${base}/#token=${token}\n`);
    const j = await runCli(['ui', '--data-dir', td.dataDir, '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout), { url: `${base}/#token=${token}` });
    const help = await runCli(['ui', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: mcp-warden ui/);
    assert.match((await runCli(['--help'])).stdout, /\n {2}ui {9}/);
    assert.equal((await runCli(['ui', '--bogus'])).code, 2);
  });

  it('`mcp-warden ui --open` runs xdg-open with the URL, or says that there is none', async () => {
    const bin = join(scratch, 'bin');
    const seen = join(scratch, 'opened.txt');
    await rm(bin, { recursive: true, force: true });
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > '${seen}'\n`);
    await chmod(join(bin, 'xdg-open'), 0o755);
    const opened = await runCli(['ui', '--data-dir', td.dataDir, '--open'], { ...process.env, PATH: bin });
    assert.equal(opened.code, 0, opened.stderr);
    assert.ok(await waitFor(async () => (await readFile(seen, 'utf8').catch(() => '')) !== '', { timeoutMs: 5_000 }));
    assert.equal(await readFile(seen, 'utf8'), `${base}/#token=${token}`);

    const none = await runCli(['ui', '--data-dir', td.dataDir, '--open'], { ...process.env, PATH: join(scratch, 'empty') });
    assert.equal(none.code, 1);
    assert.equal(none.stdout, `${base}/#token=${token}\n`, 'the URL is still printed');
    assert.match(none.stderr, /xdg-open is not installed/);
  });

  it('`mcp-warden ui` without a daemon exits 7', async () => {
    const r = await runCli(['ui', '--data-dir', join(scratch, 'no-daemon')]);
    assert.equal(r.code, 7);
    assert.match(r.stderr, /E_NO_DAEMON: no daemon is running/);
    assert.equal(r.stdout, '');
  });
});
