import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile, chmod, lstat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ErrorCodes, WardenError } from '../../src/core/error-codes.js';
import { DEFAULT_SETTINGS, type Settings } from '../../src/core/settings.js';
import {
  MAX_TIMER_MS,
  parseConfig,
  parseJsonText,
  parseServerEntry,
  suggestKey,
  validateServerName,
  type ParseConfigResult,
} from '../../src/config/config-schema.js';
import type { ConfigIssue, ConfigWarning, WardenConfig } from '../../src/config/config-types.js';
import { makeDefaultConfig, resolveDemoServerPath } from '../../src/config/default-config.js';
import { ensureConfigFile, loadConfigFile, updateConfigFile, writeConfigAtomic } from '../../src/adapters/store/config-file.js';

const BASE = '/home/user/.config/mcp-warden';

function ok(raw: unknown, baseDir = BASE): { config: WardenConfig; warnings: ConfigWarning[] } {
  const r = parseConfig(raw, { baseDir });
  if (!r.ok) assert.fail(`expected a valid config, got issues:\n${r.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  return r;
}

function bad(raw: unknown, baseDir = BASE): { issues: ConfigIssue[]; warnings: ConfigWarning[] } {
  const r: ParseConfigResult = parseConfig(raw, { baseDir });
  if (r.ok) assert.fail('expected the config to be rejected');
  assert.ok(r.issues.length > 0);
  return r;
}

function server(entry: unknown, name = 's'): unknown {
  return { mcpServers: { [name]: entry } };
}

/** Asserts exactly one issue at `path` whose message matches `re`. */
function assertIssue(issues: ConfigIssue[], path: string, re: RegExp): void {
  const at = issues.filter((i) => i.path === path);
  assert.equal(at.length, 1, `expected one issue at ${path}, got: ${JSON.stringify(issues)}`);
  assert.match(at[0]!.message, re);
}

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'mcp-warden-config-test-'));
  tempDirs.push(d);
  return d;
}
after(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function expectWardenError(p: Promise<unknown>, code: string): Promise<WardenError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WardenError, `expected a WardenError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected a rejection with ${code}`);
}

// ---------------------------------------------------------------------------------------------

describe('parseConfig: valid files', () => {
  test('accepts a Claude Desktop config unchanged in meaning', () => {
    const raw = {
      mcpServers: {
        filesystem: {
          command: 'npx',
          args: ['-y', '@modelcontextprotocol/server-filesystem', '/Users/me/Desktop'],
        },
        memory: {
          command: 'npx',
          args: ['-y', '@modelcontextprotocol/server-memory'],
          env: { MEMORY_FILE_PATH: '/tmp/memory.json' },
        },
      },
    };
    const { config, warnings } = ok(raw);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.settings, DEFAULT_SETTINGS);
    assert.deepEqual(config.mcpServers.filesystem, {
      type: 'stdio',
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-filesystem', '/Users/me/Desktop'],
      env: {},
      disabled: false,
      quarantined: false,
    });
    assert.deepEqual(config.mcpServers.memory?.env, { MEMORY_FILE_PATH: '/tmp/memory.json' });
  });

  test('fills defaults for a minimal entry', () => {
    const { config } = ok(server({ command: 'my-server' }));
    assert.deepEqual(config.mcpServers.s, {
      type: 'stdio',
      command: 'my-server',
      args: [],
      env: {},
      disabled: false,
      quarantined: false,
    });
    assert.equal('cwd' in config.mcpServers.s!, false);
    assert.equal('url' in config.mcpServers.s!, false);
    assert.equal('headers' in config.mcpServers.s!, false);
  });

  test('keeps every known field', () => {
    const docker = {
      image: 'mcp/memory',
      network: 'bridge',
      memory: '512m',
      cpus: 1.5,
      volumes: ['/data:/data:ro'],
      allowHostMounts: true,
      env: { B: '2' },
    };
    const { config, warnings } = ok(
      server({
        command: 'node',
        args: ['server.js'],
        env: { A: '1', EMPTY: '' },
        cwd: '/srv/mcp',
        type: 'stdio',
        disabled: true,
        quarantined: true,
        docker,
      }),
    );
    assert.deepEqual(warnings, [], 'docker must not warn');
    assert.deepEqual(config.mcpServers.s, {
      type: 'stdio',
      command: 'node',
      args: ['server.js'],
      env: { A: '1', EMPTY: '' },
      cwd: '/srv/mcp',
      disabled: true,
      quarantined: true,
      docker: { ...docker, memory: 512 * 1024 * 1024 },
    });
  });

  test('an empty mcpServers object is valid; a missing one warns', () => {
    assert.deepEqual(ok({ mcpServers: {} }).warnings, []);
    const r = ok({});
    assert.deepEqual(r.config.mcpServers, {});
    assert.deepEqual(
      r.warnings.map((w) => w.path),
      ['$.mcpServers'],
    );
  });

  test('relative cwd is resolved against the config directory; absolute cwd is normalized', () => {
    assert.equal(ok(server({ command: 'x', cwd: 'servers/a' })).config.mcpServers.s?.cwd, `${BASE}/servers/a`);
    assert.equal(ok(server({ command: 'x', cwd: '../shared' })).config.mcpServers.s?.cwd, '/home/user/.config/shared');
    assert.equal(ok(server({ command: 'x', cwd: '.' })).config.mcpServers.s?.cwd, BASE);
    assert.equal(ok(server({ command: 'x', cwd: '/opt//x/./y/' })).config.mcpServers.s?.cwd, '/opt/x/y');
  });

  test('$schema at the top level is accepted silently', () => {
    assert.deepEqual(ok({ $schema: 'https://example.com/s.json', mcpServers: {} }).warnings, []);
  });
});

describe('parseConfig: malformed fields report path and reason', () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['command not a string', { command: 5 }, '$.mcpServers.s.command', /expected the command as a string, got a number/],
    ['command empty', { command: '' }, '$.mcpServers.s.command', /must not be empty/],
    ['command null', { command: null }, '$.mcpServers.s.command', /got null/],
    ['command with NUL', { command: 'a\u0000b' }, '$.mcpServers.s.command', /NUL/],
    ['args not an array', { command: 'x', args: '-y pkg' }, '$.mcpServers.s.args', /expected an array of strings, got a string/],
    ['args an object', { command: 'x', args: { a: 1 } }, '$.mcpServers.s.args', /expected an array of strings, got an object/],
    ['args element not a string', { command: 'x', args: ['a', 2] }, '$.mcpServers.s.args[1]', /string, got a number/],
    ['args element with NUL', { command: 'x', args: ['a\u0000'] }, '$.mcpServers.s.args[0]', /NUL/],
    ['env an array', { command: 'x', env: ['A=1'] }, '$.mcpServers.s.env', /expected an environment map .*got an array/],
    ['env null', { command: 'x', env: null }, '$.mcpServers.s.env', /got null/],
    ['env value a number', { command: 'x', env: { PORT: 8080 } }, '$.mcpServers.s.env.PORT', /expected a string value, got a number/],
    ['env value a boolean', { command: 'x', env: { DEBUG: true } }, '$.mcpServers.s.env.DEBUG', /got a boolean/],
    ['env name with =', { command: 'x', env: { 'A=B': 'x' } }, '$.mcpServers.s.env["A=B"]', /must not contain "="/],
    ['env name empty', { command: 'x', env: { '': 'x' } }, '$.mcpServers.s.env[""]', /non-empty/],
    ['cwd a number', { command: 'x', cwd: 1 }, '$.mcpServers.s.cwd', /expected the working directory as a string/],
    ['cwd empty', { command: 'x', cwd: '' }, '$.mcpServers.s.cwd', /must not be empty/],
    ['cwd with ~', { command: 'x', cwd: '~/projects' }, '$.mcpServers.s.cwd', /"~" is not expanded/],
    ['type unknown', { command: 'x', type: 'websocket' }, '$.mcpServers.s.type', /expected one of "stdio", "http".*got "websocket"/],
    ['type not a string', { command: 'x', type: 1 }, '$.mcpServers.s.type', /got a number/],
    ['url not a string', { url: 42, type: 'http' }, '$.mcpServers.s.url', /expected the URL as a string/],
    ['url not http', { url: 'ftp://example.com/x' }, '$.mcpServers.s.url', /http:\/\/ or https:\/\//],
    ['url relative', { url: '/mcp', type: 'sse' }, '$.mcpServers.s.url', /absolute/],
    ['headers not a map', { url: 'https://x.test/mcp', headers: 'Bearer x' }, '$.mcpServers.s.headers', /header map/],
    ['header value a number', { url: 'https://x.test/mcp', headers: { 'X-N': 1 } }, '$.mcpServers.s.headers.X-N', /string value/],
    ['disabled a string', { command: 'x', disabled: 'true' }, '$.mcpServers.s.disabled', /expected true or false, got a string/],
    ['quarantined a number', { command: 'x', quarantined: 1 }, '$.mcpServers.s.quarantined', /expected true or false, got a number/],
    ['docker a string', { command: 'x', docker: 'mcp/memory' }, '$.mcpServers.s.docker', /expected an object, got a string/],
    ['docker an array', { command: 'x', docker: [] }, '$.mcpServers.s.docker', /expected an object, got an array/],
    ['entry a string', 'npx foo', '$.mcpServers.s', /expected an object describing the server, got a string/],
    ['entry null', null, '$.mcpServers.s', /got null/],
    ['entry an array', ['npx'], '$.mcpServers.s', /got an array/],
  ];
  for (const [title, entry, p, re] of cases) {
    test(title, () => {
      const { issues } = bad(server(entry));
      assertIssue(issues, p, re);
      assert.equal(issues.length, 1, JSON.stringify(issues));
    });
  }

  test('names with special characters are quoted in paths', () => {
    const { issues } = bad(server({ command: 5 }, 'my server'));
    assert.ok(
      issues.some((i) => i.path === '$.mcpServers["my server"].command'),
      JSON.stringify(issues),
    );
    assert.ok(issues.some((i) => i.path === '$.mcpServers["my server"]' && /invalid server name/.test(i.message)));
  });

  test('top-level shape errors', () => {
    assertIssue(bad([]).issues, '$', /expected a JSON object at the top level, got an array/);
    assertIssue(bad(null).issues, '$', /got null/);
    assertIssue(bad('x').issues, '$', /got a string/);
    assertIssue(bad({ mcpServers: [] }).issues, '$.mcpServers', /expected an object mapping server names/);
    assertIssue(bad({ mcpServers: null }).issues, '$.mcpServers', /got null/);
    assertIssue(bad({ mcpServers: {}, settings: 5 }).issues, '$.settings', /expected an object of settings, got a number/);
    assertIssue(bad({ mcpServers: {}, settings: [] }).issues, '$.settings', /got an array/);
  });

  test('command/url combinations', () => {
    assertIssue(bad(server({})).issues, '$.mcpServers.s', /missing "command"/);
    assertIssue(bad(server({ args: ['x'] })).issues, '$.mcpServers.s', /missing "command"/);
    assertIssue(bad(server({ command: 'npx', url: 'https://x.test/mcp' })).issues, '$.mcpServers.s', /both "command" and "url"/);
    assertIssue(
      bad(server({ type: 'http', command: 'npx', url: 'https://x.test/mcp' })).issues,
      '$.mcpServers.s',
      /both "command" and "url"/,
    );
    assertIssue(bad(server({ type: 'stdio', url: 'https://x.test/mcp' })).issues, '$.mcpServers.s.type', /type "stdio" needs "command"/);
    assertIssue(bad(server({ type: 'sse', command: 'npx' })).issues, '$.mcpServers.s', /remote server type and needs "url"/);
    assertIssue(bad(server({ type: 'http' })).issues, '$.mcpServers.s', /needs "url"/);
  });

  test('every issue of a file is reported at once', () => {
    const { issues } = bad({
      mcpServers: {
        memory: { command: 'npx', args: 'oops', env: { A: 1, B: 2 } },
        fs: { command: 7, disabled: 'no' },
        web: { command: 'a', url: 'https://x.test' },
        'bad name': { command: 'ok' },
        fine: { command: 'ok' },
      },
      settings: { maxSessions: 0, initTimeoutMs: -5 },
    });
    assert.deepEqual(issues.map((i) => i.path).sort(), [
      '$.mcpServers.fs.command',
      '$.mcpServers.fs.disabled',
      '$.mcpServers.memory.args',
      '$.mcpServers.memory.env.A',
      '$.mcpServers.memory.env.B',
      '$.mcpServers.web',
      '$.mcpServers["bad name"]',
      '$.settings.initTimeoutMs',
      '$.settings.maxSessions',
    ]);
  });

  test('messages never echo values (they may be secrets)', () => {
    const { issues } = bad(server({ command: 'x', env: { TOKEN: 123456789 }, url: 'https://user:hunter2@x.test' }));
    for (const i of issues) {
      assert.doesNotMatch(i.message, /123456789|hunter2/);
    }
  });
});

describe('parseConfig: unknown and foreign keys', () => {
  test('unknown server keys warn with path and a suggestion', () => {
    const { issues, warnings } = bad(server({ comand: 'npx', args: [] }, 'memory'));
    assert.ok(
      warnings.some(
        (w) =>
          w.path === '$.mcpServers.memory.comand' &&
          w.message === 'unknown key, ignored (did you mean "command"?)' &&
          w.level === 'warning',
      ),
      JSON.stringify(warnings),
    );
    assertIssue(issues, '$.mcpServers.memory', /missing "command"/);
  });

  test('suggestions: typos, case, aliases; none for unrelated keys', () => {
    const { warnings } = ok(server({ command: 'x', Args: [], evn: {}, cmd: 'y', serverUrl: 'u', enabled: true, banana: 1 }));
    const byPath = new Map(warnings.map((w) => [w.path, w]));
    assert.match(byPath.get('$.mcpServers.s.Args')!.message, /did you mean "args"\?/);
    assert.match(byPath.get('$.mcpServers.s.evn')!.message, /did you mean "env"\?/);
    assert.match(byPath.get('$.mcpServers.s.cmd')!.message, /did you mean "command"\?/);
    assert.match(byPath.get('$.mcpServers.s.serverUrl')!.message, /did you mean "url"\?/);
    assert.match(byPath.get('$.mcpServers.s.enabled')!.message, /"disabled"/);
    assert.equal(byPath.get('$.mcpServers.s.banana')!.message, 'unknown key, ignored');
    for (const w of warnings) assert.equal(w.level, 'warning');
    assert.equal(suggestKey('quarantine', ['quarantined', 'disabled']), 'quarantined');
    assert.equal(suggestKey('xyz', ['command']), undefined);
  });

  test("other clients' keys are info-level notes, not warnings", () => {
    const { config, warnings } = ok(
      server({
        command: 'x',
        envFile: '.env',
        timeout: 60,
        autoApprove: ['read'],
        alwaysAllow: ['read'],
        description: 'my server',
      }),
    );
    assert.ok(config.mcpServers.s);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.level]),
      [
        ['$.mcpServers.s.envFile', 'info'],
        ['$.mcpServers.s.timeout', 'info'],
        ['$.mcpServers.s.autoApprove', 'info'],
        ['$.mcpServers.s.alwaysAllow', 'info'],
        ['$.mcpServers.s.description', 'info'],
      ],
    );
    assert.match(warnings[0]!.message, /NOT set/);
  });

  test('top-level keys of other apps warn but do not fail', () => {
    const { warnings } = ok({
      globalShortcut: 'Cmd+Shift+Space',
      preferences: { menuBarEnabled: true },
      mcpServer: {},
      mcpServers: {},
    });
    assert.deepEqual(
      warnings.map((w) => w.path),
      ['$.globalShortcut', '$.preferences', '$.mcpServer'],
    );
    assert.match(warnings[2]!.message, /did you mean "mcpServers"\?/);
    assert.match(ok({ servers: {}, mcpServers: {} }).warnings[0]!.message, /"mcpServers"/);
  });

  test('unknown settings keys warn with suggestions', () => {
    const { config, warnings } = ok({ mcpServers: {}, settings: { initTimeotMs: 5, colour: 'red' } });
    assert.deepEqual(config.settings, DEFAULT_SETTINGS);
    assert.deepEqual(
      warnings.map((w) => [w.path, w.message]),
      [
        ['$.settings.initTimeotMs', 'unknown key, ignored (did you mean "initTimeoutMs"?)'],
        ['$.settings.colour', 'unknown key, ignored'],
      ],
    );
  });
});

describe('parseConfig: remote servers', () => {
  for (const type of ['http', 'sse', 'streamable-http', 'streamableHttp']) {
    test(`type "${type}" is accepted and marked remote, with its transport`, () => {
      const { config, warnings } = ok(server({ type, url: 'https://mcp.example.com/mcp', headers: { Authorization: 'Bearer t' } }));
      assert.deepEqual(warnings, []);
      assert.deepEqual(config.mcpServers.s, {
        type: 'remote',
        url: 'https://mcp.example.com/mcp',
        headers: { Authorization: 'Bearer t' },
        args: [],
        env: {},
        disabled: false,
        quarantined: false,
        transport: type === 'sse' ? 'sse' : 'http',
      });
    });
  }

  test('a url without type is inferred remote (transport chosen at connect: Streamable HTTP, then SSE)', () => {
    const { config } = ok(server({ url: 'http://127.0.0.1:3000/sse' }));
    assert.equal(config.mcpServers.s?.type, 'remote');
    assert.equal(config.mcpServers.s?.command, undefined);
    assert.equal(config.mcpServers.s?.transport, undefined);
  });

  test('stdio-only fields on a remote entry, and headers on a stdio entry, warn', () => {
    const r = ok(server({ url: 'https://x.test/mcp', args: ['a'], env: { A: 'b' }, cwd: '/x' }));
    assert.deepEqual(
      r.warnings.map((w) => w.path),
      ['$.mcpServers.s.args', '$.mcpServers.s.env', '$.mcpServers.s.cwd'],
    );
    assert.equal(r.config.mcpServers.s?.cwd, undefined);
    const s = ok(server({ command: 'x', headers: { A: 'b' } }));
    assert.deepEqual(
      s.warnings.map((w) => w.path),
      ['$.mcpServers.s.headers'],
    );
    assert.equal(s.config.mcpServers.s?.headers, undefined);
  });

  test('a remote entry does not prevent other servers from loading', () => {
    const { config } = ok({ mcpServers: { r: { url: 'https://x.test/mcp' }, l: { command: 'x' } } });
    assert.equal(config.mcpServers.r?.type, 'remote');
    assert.equal(config.mcpServers.l?.type, 'stdio');
  });
});

describe('server names', () => {
  test('valid names', () => {
    for (const n of ['a', 'memory', 'A-b_c', '9lives', '-dash-', 'x'.repeat(32), 'my_server-2']) {
      assert.equal(validateServerName(n), undefined, n);
      assert.ok(ok(server({ command: 'x' }, n)).config.mcpServers[n], n);
    }
  });

  const invalid: Array<[string, RegExp]> = [
    ['', /must not be empty/],
    ['x'.repeat(33), /at most 32 characters/],
    ['my server', /may only contain/],
    ['a.b', /may only contain/],
    ['a/b', /may only contain/],
    ['café', /may only contain/],
    ['_a', /must not start or end with "_"/],
    ['a_', /must not start or end with "_"/],
    ['a__b', /must not contain "__"/],
    ['__proto__', /must not start or end with "_"/],
  ];
  for (const [name, re] of invalid) {
    test(`rejects ${JSON.stringify(name)}`, () => {
      const reason = validateServerName(name);
      assert.ok(reason);
      assert.match(reason, re);
      const raw = JSON.parse(JSON.stringify({ mcpServers: { [name]: { command: 'x' } } }));
      const { issues } = bad(raw);
      assert.equal(issues.length, 1, JSON.stringify(issues));
      assert.match(issues[0]!.message, new RegExp(`invalid server name ${escapeRe(JSON.stringify(name))}: `));
      assert.match(issues[0]!.message, re);
    });
  }
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('settings', () => {
  test('merged over DEFAULT_SETTINGS', () => {
    const { config } = ok({ mcpServers: {}, settings: { initTimeoutMs: 5000, maxSessions: 2, restartBackoffFactor: 1.5 } });
    assert.deepEqual(config.settings, { ...DEFAULT_SETTINGS, initTimeoutMs: 5000, maxSessions: 2, restartBackoffFactor: 1.5 });
    assert.equal(Object.isFrozen(config.settings), false);
    assert.notEqual(config.settings, DEFAULT_SETTINGS);
  });

  test('the defaults themselves are valid values', () => {
    const { config, warnings } = ok({ mcpServers: {}, settings: { ...DEFAULT_SETTINGS } });
    assert.deepEqual(config.settings, DEFAULT_SETTINGS);
    assert.deepEqual(warnings, []);
  });

  test('every setting rejects negatives, strings, null and non-finite numbers', () => {
    for (const key of Object.keys(DEFAULT_SETTINGS)) {
      for (const v of [-1, '100', null, Infinity, NaN, true]) {
        const { issues } = bad({ mcpServers: {}, settings: { [key]: v } });
        assert.equal(issues.length, 1, `${key}=${String(v)}`);
        assert.equal(issues[0]!.path, `$.settings.${key}`);
        assert.match(issues[0]!.message, /^expected /);
      }
    }
  });

  test('range rules', () => {
    const accept: Array<[keyof Settings, number]> = [
      ['restartBackoffFactor', 1],
      ['restartBackoffFactor', 1.5],
      ['restartBackoffInitialMs', 0],
      ['stopEofGraceMs', 0],
      ['restartIntensityMax', 0],
      ['logFileCount', 0],
      ['stderrLinesPerSecond', 0],
      ['maxSessions', 1],
      ['reapMaxAttempts', 1],
      ['toolCallTimeoutMs', MAX_TIMER_MS],
      ['logFileMaxBytes', 2 ** 40],
    ];
    for (const [k, v] of accept) assert.equal(ok({ mcpServers: {}, settings: { [k]: v } }).config.settings[k], v, `${k}=${v}`);

    const reject: Array<[keyof Settings, number, RegExp]> = [
      ['restartBackoffFactor', 0.5, /a number >= 1, got 0.5/],
      ['restartBackoffFactor', 0, /a number >= 1/],
      ['maxSessions', 0, /a positive integer, got 0/],
      ['maxSessions', 1.5, /integer/],
      ['reapMaxAttempts', 0, /positive integer/],
      ['restartIntensityMax', 2.5, /non-negative integer/],
      ['logFileCount', 1.2, /integer/],
      ['initTimeoutMs', 0, /positive integer/],
      ['toolCallTimeoutMs', 0, /positive integer/],
      ['upstreamRequestTimeoutMs', 0, /positive integer/],
      ['sessionIdleTtlMs', 0, /positive integer/],
      ['shutdownBudgetMs', 0, /positive integer/],
      ['restartIntensityWindowMs', 0, /positive integer/],
      ['httpMaxBodyBytes', 0, /positive integer/],
      ['stderrMaxLineBytes', 0, /positive integer/],
      ['initTimeoutMs', 100.5, /integer/],
      ['toolCallTimeoutMs', MAX_TIMER_MS + 1, /no greater than 2147483647/],
    ];
    for (const [k, v, re] of reject) assertIssue(bad({ mcpServers: {}, settings: { [k]: v } }).issues, `$.settings.${k}`, re);
  });

  test('list settings: allowedOrigins takes origins and names the bad item', () => {
    const origins = ['https://app.example', 'http://10.0.0.5:8080'];
    assert.deepEqual(ok({ mcpServers: {}, settings: { allowedOrigins: origins } }).config.settings.allowedOrigins, origins);
    assert.deepEqual(ok({ mcpServers: {} }).config.settings.allowedOrigins, []);
    assertIssue(
      bad({ mcpServers: {}, settings: { allowedOrigins: ['https://ok.example', 'app.example'] } }).issues,
      '$.settings.allowedOrigins[1]',
      /expected an origin like "https:\/\/app.example", got "app.example"/,
    );
    assertIssue(
      bad({ mcpServers: {}, settings: { allowedOrigins: ['https://a.example/path'] } }).issues,
      '$.settings.allowedOrigins[0]',
      /origin/,
    );
    assertIssue(bad({ mcpServers: {}, settings: { allowedOrigins: 'https://a.example' } }).issues, '$.settings.allowedOrigins', /an array/);
  });

  test('a backoff maximum below its initial delay warns', () => {
    const { warnings } = ok({ mcpServers: {}, settings: { restartBackoffInitialMs: 5000, restartBackoffMaxMs: 100 } });
    assert.deepEqual(
      warnings.map((w) => w.path),
      ['$.settings.restartBackoffMaxMs'],
    );
  });
});

describe('parseServerEntry', () => {
  test('validates a single entry like a file entry', () => {
    const r = parseServerEntry('memory', { command: 'npx', cwd: 'data' }, '/cfg');
    assert.ok(r.ok);
    assert.equal(r.entry.cwd, '/cfg/data');
    assert.equal(r.entry.type, 'stdio');
    const e = parseServerEntry('memory', { command: 'npx', args: [1], foo: 1 }, '/cfg');
    assert.equal(e.ok, false);
    if (!e.ok) {
      assert.deepEqual(
        e.issues.map((i) => i.path),
        ['$.mcpServers.memory.args[0]'],
      );
      assert.deepEqual(
        e.warnings.map((w) => w.path),
        ['$.mcpServers.memory.foo'],
      );
    }
    const n = parseServerEntry('a__b', { command: 'x' }, '/cfg');
    assert.equal(n.ok, false);
  });

  test('never throws, even on hostile input', () => {
    const hostile = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('boom');
        },
      },
    );
    const r = parseServerEntry('x', hostile, '/cfg');
    assert.equal(r.ok, false);
    const c = parseConfig({ mcpServers: hostile }, { baseDir: '/cfg' });
    assert.equal(c.ok, false);
    const getter = {
      get command(): string {
        throw new Error('boom');
      },
    };
    assert.equal(parseServerEntry('x', getter, '/cfg').ok, false);
    assert.equal(parseConfig(undefined, { baseDir: '/' }).ok, false);
  });
});

describe('parseJsonText', () => {
  test('reports line and column of syntax errors', () => {
    const cases: Array<[string, number, number, RegExp]> = [
      ['{\n  "a": 1\n  "b": 2\n}', 3, 3, /expected "," or "}".*comma missing/],
      ['{\n  "a": 1,\n}', 3, 1, /trailing comma/],
      ['{"a": [1, 2,]}', 1, 13, /trailing comma before "\]"/],
      ['{\n  // comment\n  "a": 1\n}', 2, 3, /comments are not allowed/],
      ["{'a': 1}", 1, 2, /double quotes/],
      ['{"a": tru}', 1, 7, /unexpected "tru"/],
      ['{"a": 1', 1, 8, /end of file/],
      ['', 1, 1, /empty/],
      ['   \n ', 1, 1, /empty/],
      ['{"a": "x\ny"}', 1, 9, /line break inside a string/],
      ['{"a": "unterminated}', 1, 7, /unterminated string/],
      ['{"a": 01}', 1, 7, /leading zeros/],
      ['{"a": 1} x', 1, 10, /after the end/],
      ['{"ü": "é", x}', 1, 12, /property name/],
      ['{"a": "\\q"}', 1, 8, /escape/],
    ];
    for (const [text, line, column, re] of cases) {
      const r = parseJsonText(text);
      assert.equal(r.ok, false, text);
      if (!r.ok) {
        assert.deepEqual([r.line, r.column], [line, column], `${JSON.stringify(text)}: ${r.message}`);
        assert.match(r.message, re, text);
      }
    }
  });

  test('parses valid JSON (with a BOM) like JSON.parse and warns about duplicate keys', () => {
    const text = '\uFEFF{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}, "n": [1.5e3, -0, "\\u00e9"]}';
    const r = parseJsonText(text);
    assert.ok(r.ok);
    assert.deepEqual(r.value, JSON.parse(text.slice(1)));
    assert.deepEqual(r.warnings, [
      { path: '$.mcpServers.a', message: 'duplicate key; only the last occurrence is used', level: 'warning' },
    ]);
  });

  test('deep nesting falls back to JSON.parse', () => {
    const deep = '['.repeat(2000) + ']'.repeat(2000);
    assert.ok(parseJsonText(deep).ok);
    const r = parseJsonText('['.repeat(2000) + ']'.repeat(1999));
    assert.equal(r.ok, false);
  });
});

// ---------------------------------------------------------------------------------------------
// File adapter
// ---------------------------------------------------------------------------------------------

describe('loadConfigFile', () => {
  test('loads a valid file; relative cwd resolves against the file directory', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ mcpServers: { a: { command: 'x', cwd: 'sub', foo: 1 } }, settings: { maxSessions: 3 } }));
    const { config, warnings } = await loadConfigFile(file);
    assert.equal(config.mcpServers.a?.cwd, path.join(dir, 'sub'));
    assert.equal(config.settings.maxSessions, 3);
    assert.deepEqual(
      warnings.map((w) => w.path),
      ['$.mcpServers.a.foo'],
    );
  });

  test('accepts a UTF-8 BOM and reports duplicate keys', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'c.json');
    await writeFile(file, '\uFEFF{"mcpServers": {"a": {"command": "x"}}, "mcpServers": {"b": {"command": "y"}}}');
    const { config, warnings } = await loadConfigFile(file);
    assert.deepEqual(Object.keys(config.mcpServers), ['b']);
    assert.deepEqual(
      warnings.map((w) => w.path),
      ['$.mcpServers'],
    );
  });

  test('invalid JSON: CONFIG_INVALID naming the file, line and column', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    await writeFile(file, '{\n  "mcpServers": {\n    "a": {"command": "x"}\n    "b": {}\n  }\n}\n');
    const err = await expectWardenError(loadConfigFile(file), ErrorCodes.CONFIG_INVALID);
    const [first, ...rest] = err.message.split('\n');
    assert.match(first!, new RegExp(escapeRe(file)));
    assert.match(rest.join('\n'), /line 4, column 5/);
    assert.equal(err.detail?.file, file);
    assert.equal(err.detail?.line, 4);
    assert.equal(err.detail?.column, 5);
    assert.equal((err.detail?.issues as ConfigIssue[]).length, 1);
  });

  test('invalid content: every issue on its own line', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ mcpServers: { memory: { command: 'npx', args: 'x' }, b: {} }, settings: { maxSessions: 0 } }));
    const err = await expectWardenError(loadConfigFile(file), ErrorCodes.CONFIG_INVALID);
    const lines = err.message.split('\n');
    assert.match(lines[0]!, new RegExp(`${escapeRe(file)}.*3 problems`));
    assert.equal(lines.length, 4);
    assert.ok(lines.includes('  $.mcpServers.memory.args: expected an array of strings, got a string'), err.message);
    assert.ok(lines.some((l) => l.startsWith('  $.mcpServers.b: missing "command"')));
    assert.ok(lines.some((l) => l.startsWith('  $.settings.maxSessions: ')));
    assert.equal((err.detail?.issues as ConfigIssue[]).length, 3);
  });

  test('I/O errors: CONFIG_UNREADABLE naming the file and errno', async () => {
    const dir = await tempDir();
    const missing = path.join(dir, 'nope.json');
    const e1 = await expectWardenError(loadConfigFile(missing), ErrorCodes.CONFIG_UNREADABLE);
    assert.match(e1.message, new RegExp(`${escapeRe(missing)}.*ENOENT`));
    assert.deepEqual([e1.detail?.file, e1.detail?.errno], [missing, 'ENOENT']);
    const e2 = await expectWardenError(loadConfigFile(dir), ErrorCodes.CONFIG_UNREADABLE);
    assert.equal(e2.detail?.errno, 'EISDIR');
  });
});

describe('writeConfigAtomic', () => {
  test('writes pretty JSON, leaves no temp file, creates new files 0600 and keeps existing modes', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    await writeConfigAtomic(file, { mcpServers: {} });
    assert.equal(await readFile(file, 'utf8'), '{\n  "mcpServers": {}\n}\n');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['config.json']);
    await chmod(file, 0o640);
    await writeConfigAtomic(file, { a: 1 });
    assert.equal((await stat(file)).mode & 0o777, 0o640);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { a: 1 });
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('a failure before the rename leaves the original byte-identical and removes the temp file', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    const original = '{ "mcpServers": {"keep": {"command": "me"}} }\n';
    await writeFile(file, original);
    let seenTemp: string | undefined;
    const err = await expectWardenError(
      writeConfigAtomic(
        file,
        { mcpServers: {} },
        {
          beforeRename: async (tmp) => {
            seenTemp = tmp;
            // The temp file is complete, private and next to the target before the swap.
            assert.equal(path.dirname(tmp), dir);
            assert.equal(await readFile(tmp, 'utf8'), '{\n  "mcpServers": {}\n}\n');
            throw Object.assign(new Error('simulated crash'), { code: 'EIO' });
          },
        },
      ),
      ErrorCodes.CONFIG_UNREADABLE,
    );
    assert.match(err.message, /EIO/);
    assert.ok(seenTemp);
    assert.equal(await readFile(file, 'utf8'), original);
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('a write into a missing directory fails without creating anything', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'gone', 'config.json');
    const err = await expectWardenError(writeConfigAtomic(file, {}), ErrorCodes.CONFIG_UNREADABLE);
    assert.equal(err.detail?.errno, 'ENOENT');
    assert.deepEqual(await readdir(dir), []);
  });

  test('an unserializable object fails before touching the file', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    await writeFile(file, '{}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expectWardenError(writeConfigAtomic(file, cyclic), ErrorCodes.CONFIG_UNREADABLE);
    await expectWardenError(writeConfigAtomic(file, { n: 10n }), ErrorCodes.CONFIG_UNREADABLE);
    assert.equal(await readFile(file, 'utf8'), '{}');
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('a symlinked config keeps its link; the target file is replaced', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'dotfiles'));
    const real = path.join(dir, 'dotfiles', 'config.json');
    const link = path.join(dir, 'config.json');
    await writeFile(real, '{}');
    await symlink(real, link);
    await writeConfigAtomic(link, { a: 1 });
    assert.ok((await lstat(link)).isSymbolicLink());
    assert.deepEqual(JSON.parse(await readFile(real, 'utf8')), { a: 1 });
  });
});

describe('updateConfigFile', () => {
  const original = {
    globalShortcut: 'Ctrl+Space',
    mcpServers: {
      memory: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory'], autoApprove: ['x'], custom: { a: 1 } },
      other: { command: 'node', args: ['o.js'], env: { K: 'v' } },
    },
    settings: { maxSessions: 4 },
  };

  test('applies the mutation and preserves unknown keys and other servers', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    await writeFile(file, JSON.stringify(original, null, 2));
    const { config } = await updateConfigFile(file, (raw) => {
      raw.mcpServers.memory.disabled = true;
      raw.mcpServers.added = { command: 'z' };
    });
    assert.equal(config.mcpServers.memory?.disabled, true);
    const after = JSON.parse(await readFile(file, 'utf8'));
    assert.deepEqual(after, {
      ...original,
      mcpServers: {
        memory: { ...original.mcpServers.memory, disabled: true },
        other: original.mcpServers.other,
        added: { command: 'z' },
      },
    });
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('refuses an invalid result and leaves the file byte-identical', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    const text = `${JSON.stringify(original)}\n\n`;
    await writeFile(file, text);
    const err = await expectWardenError(
      updateConfigFile(file, (raw) => {
        raw.mcpServers.memory.args = 'oops';
        raw.mcpServers['bad__name'] = { command: 'x' };
      }),
      ErrorCodes.CONFIG_INVALID,
    );
    assert.match(err.message, /\$\.mcpServers\.memory\.args: expected an array of strings/);
    assert.match(err.message, /bad__name/);
    assert.equal(await readFile(file, 'utf8'), text);
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('concurrent updates are serialized and none is lost', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ mcpServers: {} }));
    const names = Array.from({ length: 20 }, (_, i) => `s${i}`);
    const results = await Promise.allSettled([
      ...names.map((n) =>
        updateConfigFile(file, (raw) => {
          raw.mcpServers[n] = { command: n };
        }),
      ),
      updateConfigFile(file, () => {
        throw new Error('mutator failed');
      }),
      updateConfigFile(file, (raw) => {
        raw.mcpServers.s0 = { command: 5 };
      }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      [...names.map(() => 'fulfilled'), 'rejected', 'rejected'],
    );
    const { config } = await loadConfigFile(file);
    assert.deepEqual(Object.keys(config.mcpServers).sort(), [...names].sort());
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('an unreadable or invalid-JSON file is reported, not overwritten', async () => {
    const dir = await tempDir();
    await expectWardenError(
      updateConfigFile(path.join(dir, 'missing.json'), () => {}),
      ErrorCodes.CONFIG_UNREADABLE,
    );
    const file = path.join(dir, 'broken.json');
    await writeFile(file, '{"mcpServers": {,}}');
    const err = await expectWardenError(
      updateConfigFile(file, () => {}),
      ErrorCodes.CONFIG_INVALID,
    );
    assert.match(err.message, /line 1, column 17/);
    assert.equal(await readFile(file, 'utf8'), '{"mcpServers": {,}}');
  });
});

describe('ensureConfigFile and the default config', () => {
  const defaults = () => makeDefaultConfig({ nodePath: process.execPath, demoServerPath: '/opt/warden/demo-server.js' });

  test('creates the parent directory (0700) and the file (0600) with the default', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'a', 'b', 'config.json');
    assert.deepEqual(await ensureConfigFile(file, defaults), { created: true });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), defaults());
    const { config, warnings } = await loadConfigFile(file);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.mcpServers.demo, {
      type: 'stdio',
      command: process.execPath,
      args: ['/opt/warden/demo-server.js'],
      env: {},
      disabled: false,
      quarantined: false,
    });
    assert.deepEqual(config.settings, DEFAULT_SETTINGS);
    assert.deepEqual(await readdir(path.dirname(file)), ['config.json']);
  });

  test('never overwrites an existing file (even an invalid one)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    await writeFile(file, 'not json at all', { mode: 0o644 });
    let called = false;
    const r = await ensureConfigFile(file, () => {
      called = true;
      return {};
    });
    assert.deepEqual(r, { created: false });
    assert.equal(called, false);
    assert.equal(await readFile(file, 'utf8'), 'not json at all');
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('racing calls create the file exactly once, complete', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'config.json');
    const results = await Promise.all(Array.from({ length: 10 }, () => ensureConfigFile(file, defaults)));
    assert.equal(results.filter((r) => r.created).length, 1);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), defaults());
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('makeDefaultConfig and resolveDemoServerPath', () => {
    assert.deepEqual(makeDefaultConfig({ nodePath: '/usr/bin/node', demoServerPath: '/d/demo.js' }), {
      mcpServers: { demo: { command: '/usr/bin/node', args: ['/d/demo.js'] } },
      settings: {},
    });
    const p = resolveDemoServerPath();
    assert.ok(path.isAbsolute(p));
    assert.ok(p.endsWith(path.join('dist', 'src', 'demo', 'demo-server.js')), p);
  });
});
