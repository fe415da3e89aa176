/**
 * `mcp-warden import` and `mcp-warden connect` as the CLI runs them: each client format from
 * fixtures, with and without a running daemon; connect keeps the client's other keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from '../fixtures/client-configs.js';
import { cliMain, demoServer, NODE, startTestDaemon } from '../helpers/test-daemon.js';
import { childEnv } from '../helpers/cli-daemon.js';

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [cliMain, ...args], { env: childEnv(env), timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

test('import without a daemon: every format, dry run, conflicts, prefix, --from', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-import-'));
  try {
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    const configPath = join(dataDir, 'config.json');
    // An existing file: "memory" identical to Claude Desktop's, "git" different from Windsurf's.
    const initial = {
      mcpServers: {
        memory: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory'] },
        git: { command: 'git-mcp' },
      },
      settings: {},
      otherApp: { keep: true },
    };
    writeFileSync(configPath, JSON.stringify(initial));
    const files: Record<string, string> = {};
    for (const [k, v] of Object.entries(FIXTURES)) {
      files[k] = join(dir, `${k}.json`);
      writeFileSync(files[k], JSON.stringify(v));
    }

    const dry = await cli(['import', files.claudeDesktop!, '--dry-run', '--data-dir', dataDir]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /\+ my-files\s+node files\.js \(quarantined\)/);
    assert.match(dry.stdout, /= memory\s+.*already configured, identical/);
    assert.match(dry.stdout, /1 to add, 1 unchanged, 0 conflicts \(dry run: nothing changed\)/);
    assert.deepEqual(readJson(configPath), initial, 'a dry run changes nothing');

    const desktop = await cli(['import', files.claudeDesktop!, '--data-dir', dataDir]);
    assert.equal(desktop.code, 0, desktop.stderr);
    let doc = readJson(configPath);
    assert.deepEqual(doc.mcpServers['my-files'], { command: 'node', args: ['files.js'], env: { ROOT: '/srv' }, quarantined: true });
    assert.deepEqual(doc.otherApp, { keep: true }, 'other keys are kept');

    const windsurf = await cli(['import', files.windsurf!, '--data-dir', dataDir]);
    assert.equal(windsurf.code, 0, windsurf.stderr);
    assert.match(windsurf.stdout, /! git .*\n\s+conflict: a server named "git" already exists .* with a different entry/);
    doc = readJson(configPath);
    assert.deepEqual(doc.mcpServers.git, { command: 'git-mcp' }, 'a conflict is not overwritten');
    assert.deepEqual(doc.mcpServers.remote, { url: 'https://example.com/mcp', quarantined: true });

    const prefixed = await cli(['import', files.windsurf!, '--prefix', 'ws-', '--trusted', '--data-dir', dataDir]);
    assert.equal(prefixed.code, 0, prefixed.stderr);
    doc = readJson(configPath);
    assert.deepEqual(doc.mcpServers['ws-git'], { command: 'uvx', args: ['mcp-server-git'], disabled: true }, '--trusted: not quarantined');

    for (const k of ['cursor', 'vscode'] as const) {
      const r = await cli(['import', files[k]!, '--data-dir', dataDir]);
      assert.equal(r.code, 0, r.stderr);
    }
    doc = readJson(configPath);
    assert.deepEqual(doc.mcpServers.local, { command: 'node', args: ['a.js'], quarantined: true });
    assert.deepEqual(doc.mcpServers.gh, {
      type: 'stdio',
      command: 'node',
      args: ['gh.js'],
      env: { TOKEN: '${env:API_KEY}' },
      quarantined: true,
    });

    // --from finds Claude Code's file in $HOME.
    const home = join(dir, 'home');
    mkdirSync(home);
    writeFileSync(join(home, '.claude.json'), JSON.stringify(FIXTURES.claudeCode));
    const cc = await cli(['import', '--from', 'claude-code', '--data-dir', dataDir], { HOME: home });
    assert.equal(cc.code, 0, cc.stderr);
    assert.match(cc.stdout, /conflicts with projects\["\/home\/me\/app"\]\.mcpServers\.db/);
    doc = readJson(configPath);
    assert.deepEqual(doc.mcpServers.db, { type: 'stdio', command: 'node', args: ['db.js'], env: {}, quarantined: true });
    assert.ok(doc.mcpServers.top);

    const bad = await cli(['import', '--from', 'nope', '--data-dir', dataDir]);
    assert.equal(bad.code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('import with a daemon running goes through it; connect writes client entries and keeps other keys', async () => {
  const t = await startTestDaemon({ demo: { command: NODE, args: [demoServer] } });
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-connect-'));
  try {
    const file = join(dir, 'cursor.json');
    writeFileSync(file, JSON.stringify({ mcpServers: { imported: { command: NODE, args: [demoServer], envFile: '.env' } } }));
    const r = await cli(['import', file, '--data-dir', t.dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /through the running daemon/);
    const v = await t.waitForState('imported', 'quarantined');
    assert.equal(v.quarantined, true, 'imported servers are quarantined without --trusted');
    assert.equal(readJson(t.configPath).mcpServers.imported.quarantined, true, 'the daemon wrote its config file');

    // connect: an existing Cursor file keeps every other key; with a daemon running it gets HTTP.
    const home = join(dir, 'home');
    mkdirSync(join(home, '.cursor'), { recursive: true });
    const cursorFile = join(home, '.cursor', 'mcp.json');
    const cursorDoc = { mcpServers: { other: { command: 'x', args: ['y'] } }, theme: 'dark', nested: { a: [1, 2] } };
    writeFileSync(cursorFile, JSON.stringify(cursorDoc));
    const dry = await cli(['connect', 'cursor', '--dry-run', '--data-dir', t.dataDir], { HOME: home });
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(readJson(cursorFile), cursorDoc, 'a dry run changes nothing');
    const c = await cli(['connect', 'cursor', '--data-dir', t.dataDir], { HOME: home });
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(readJson(cursorFile), {
      ...cursorDoc,
      mcpServers: { ...cursorDoc.mcpServers, 'mcp-warden': { url: t.daemon.mcpUrl } },
    });

    // Claude Desktop only launches commands: the stdio entry, into a new file.
    const cd = await cli(['connect', 'claude-desktop', '--data-dir', t.dataDir], { HOME: home });
    assert.equal(cd.code, 0, cd.stderr);
    const desktop = readJson(join(home, '.config', 'Claude', 'claude_desktop_config.json'));
    assert.deepEqual(desktop.mcpServers['mcp-warden'], { command: NODE, args: [cliMain, 'stdio', '--data-dir', t.dataDir] });

    // VS Code with --stdio: its own layout, other keys kept.
    const vsFile = join(home, '.config', 'Code', 'User', 'mcp.json');
    mkdirSync(join(home, '.config', 'Code', 'User'), { recursive: true });
    writeFileSync(vsFile, JSON.stringify(FIXTURES.vscode));
    const vs = await cli(['connect', 'vscode', '--stdio', '--data-dir', t.dataDir], { HOME: home });
    assert.equal(vs.code, 0, vs.stderr);
    const vsDoc = readJson(vsFile);
    assert.deepEqual(vsDoc.inputs, FIXTURES.vscode.inputs);
    assert.deepEqual(vsDoc.servers.gh, FIXTURES.vscode.servers.gh);
    assert.deepEqual(vsDoc.servers['mcp-warden'], { type: 'stdio', command: NODE, args: [cliMain, 'stdio', '--data-dir', t.dataDir] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await t.close();
  }
});
