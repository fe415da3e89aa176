/**
 * `mcp-warden import FILE | --from CLIENT`: other clients' MCP server lists into mcp-warden
 * (formats in src/config/client-configs.ts). With a daemon running every server goes through its
 * control channel (`server.add`, so the registry writes the file that daemon uses and starts it);
 * without one the config file is written directly (src/adapters/store/config-file.ts
 * `updateConfigFile`: validated, atomic). Servers come in quarantined unless --trusted.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { locateDaemon } from './daemon-locator.js';
import { connectToDaemon } from './servers-command.js';
import { ControlRequestError, type ControlClient } from '../control/control-client.js';
import { CLIENTS, clientConfigPath, extractServers, isClientId, type FoundServer } from '../config/client-configs.js';
import { parseServerEntry } from '../config/config-schema.js';
import { ensureConfigFile, updateConfigFile } from '../adapters/store/config-file.js';
import { makeDefaultConfig, resolveDemoServerPath } from '../config/default-config.js';
import { defaultDataDir } from '../core/defaults.js';
import { WardenError } from '../core/error-codes.js';

export const IMPORT_HELP = `Usage: mcp-warden import FILE [options]
       mcp-warden import --from CLIENT [options]

Reads the MCP servers another client has configured, shows what would change, and adds them.
Understood: "mcpServers" (Claude Desktop, Cursor, Windsurf, Claude Code), "servers" with "type" and
"inputs" (VS Code's mcp.json), and Claude Code's ~/.claude.json (top level and every project).

With a daemon running for the data dir the servers are added through it (into the config file that
daemon uses, also one given to its --config) and start at once; without one the config file is
written (--config FILE, or <data-dir>/config.json, created like serve does if missing).

Options:
  --from CLIENT     read CLIENT's file at its usual Linux location: ${CLIENTS.join(', ')}
  --dry-run         show what would be added, change nothing
  --prefix P        put P before every imported name (e.g. --prefix cursor- to avoid conflicts)
  --trusted         add them trusted (tools exposed at once); without it they are quarantined until
                    'mcp-warden servers approve NAME'
  --data-dir DIR    data directory (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  --config FILE     the config file to write when no daemon is running
  -h, --help        show this help

Each server is listed with + (added), = (already configured, identical: skipped) or ! (conflict: a
server of that name exists with a different entry, or the entry is not valid: skipped, with why).
Exit codes: 0 done (conflicts are listed, not errors); 1 adding failed; 2 usage error; 3 the file to
import or the config file is invalid or unreadable; 7 a daemon is starting (try again).
`;

type Plan = { server: FoundServer; action: 'add' | 'same' | 'conflict'; why?: string };

/** JSON with the comments and trailing commas VS Code allows in its JSONC files removed. */
export function stripJsonComments(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      const start = i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      out += text.slice(start, ++i);
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
    } else {
      out += c;
      i++;
    }
  }
  return out.replace(/,(\s*[}\]])/g, '$1');
}

async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '');
  } catch (err) {
    throw new ImportError(3, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    try {
      return JSON.parse(stripJsonComments(text));
    } catch (err) {
      throw new ImportError(3, `${file} is not valid JSON: ${(err as Error).message}`);
    }
  }
}

class ImportError extends Error {
  constructor(
    readonly exit: number,
    message: string,
  ) {
    super(message);
  }
}

/** Key order aside, the same entry; `quarantined` is the import's policy, not the server. */
function sameEntry(a: unknown, b: unknown): boolean {
  const norm = (v: unknown): string =>
    JSON.stringify(v, (_k, x: unknown) => {
      if (!x || typeof x !== 'object' || Array.isArray(x)) return x;
      const { quarantined: _q, ...rest } = x as Record<string, unknown>;
      return Object.fromEntries(Object.entries(rest).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0)));
    });
  return norm(a) === norm(b);
}

function describe(entry: Record<string, unknown>): string {
  if (typeof entry.url === 'string') return entry.url;
  const args = Array.isArray(entry.args) ? entry.args.map(String) : [];
  const line = [String(entry.command ?? '?'), ...args].join(' ');
  return line.length > 70 ? `${line.slice(0, 69)}…` : line;
}

export async function runImport(argv: string[]): Promise<number> {
  let values;
  let positional: string[];
  try {
    ({ values, positionals: positional } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        from: { type: 'string' },
        'dry-run': { type: 'boolean' },
        prefix: { type: 'string' },
        trusted: { type: 'boolean' },
        'data-dir': { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`mcp-warden import: ${(err as Error).message}\nsee mcp-warden import --help\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(IMPORT_HELP);
    return 0;
  }
  const usage = (m: string) => {
    process.stderr.write(`mcp-warden import: ${m}\nsee mcp-warden import --help\n`);
    return 2;
  };
  if (positional.length > 1) return usage(`unexpected argument "${positional[1]}"`);
  if ((positional.length === 1) === (values.from !== undefined)) return usage('give either FILE or --from CLIENT');
  if (values.from !== undefined && !isClientId(values.from))
    return usage(`--from: expected one of ${CLIENTS.join(', ')}, got "${values.from}"`);
  const file =
    values.from !== undefined && isClientId(values.from)
      ? clientConfigPath(values.from, homedir(), process.env.XDG_CONFIG_HOME)
      : path.resolve(positional[0]!);
  const dataDir = path.resolve(values['data-dir'] ?? defaultDataDir());
  const trusted = values.trusted ?? false;

  let client: ControlClient | undefined;
  try {
    const extracted = extractServers(await readJsonFile(file), values.prefix ?? '');
    const found = await locateDaemon(dataDir);
    if (found.kind === 'starting')
      throw new ImportError(7, `the daemon of ${dataDir} (pid ${found.holder.pid}) is still starting; try again in a moment`);
    let configPath: string;
    let existingNames: Set<string>;
    if (found.kind === 'running') {
      client = await connectToDaemon(dataDir);
      const snapConfig = (client.snapshot as { config?: { path: string } }).config;
      configPath = snapConfig?.path ?? path.join(dataDir, 'config.json');
      if (values.config && path.resolve(values.config) !== configPath) {
        process.stderr.write(
          `mcp-warden import: a daemon is running for ${dataDir}; its config file ${configPath} is used, not ${values.config}\n`,
        );
      }
      existingNames = new Set(client.snapshot.servers.map((s) => s.name));
    } else {
      configPath = path.resolve(values.config ?? path.join(dataDir, 'config.json'));
      if (!values.config && !values['dry-run']) {
        await ensureConfigFile(configPath, () =>
          makeDefaultConfig({ nodePath: process.execPath, demoServerPath: resolveDemoServerPath() }),
        );
      }
      existingNames = new Set();
    }
    const raw = (await readJsonFile(configPath).catch((err: unknown) => {
      if (values['dry-run'] && found.kind !== 'running') return {};
      throw err;
    })) as { mcpServers?: Record<string, unknown> };
    const current = raw && typeof raw.mcpServers === 'object' && raw.mcpServers !== null ? raw.mcpServers : {};
    for (const n of Object.keys(current)) existingNames.add(n);

    const plan: Plan[] = extracted.servers.map((server) => {
      if (existingNames.has(server.name)) {
        return sameEntry(current[server.name], server.entry)
          ? { server, action: 'same' }
          : {
              server,
              action: 'conflict',
              why: `a server named "${server.name}" already exists in ${configPath} with a different entry (rename with --prefix)`,
            };
      }
      const check = parseServerEntry(server.name, server.entry, path.dirname(configPath));
      if (!check.ok)
        return { server, action: 'conflict', why: `not a valid entry: ${check.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}` };
      return { server, action: 'add' };
    });

    const out: string[] = [
      `import from ${file} (${extracted.layouts.join(', ') || 'no server list found'}) into ${configPath}${client ? ' through the running daemon' : ''}`,
    ];
    for (const p of plan) {
      const mark = p.action === 'add' ? '+' : p.action === 'same' ? '=' : '!';
      const state =
        p.action === 'add' ? (trusted ? ' (trusted)' : ' (quarantined)') : p.action === 'same' ? ' (already configured, identical)' : '';
      out.push(`  ${mark} ${p.server.name.padEnd(20)} ${describe(p.server.entry)}${state}`);
      if (p.why) out.push(`      conflict: ${p.why}`);
      for (const n of p.server.notes) out.push(`      note: ${n}`);
    }
    for (const problem of extracted.problems) out.push(`  ! ${problem}`);
    const adds = plan.filter((p) => p.action === 'add');
    const conflicts =
      plan.filter((p) => p.action === 'conflict').length + extracted.problems.filter((p) => !p.startsWith('inputs:')).length;
    out.push(
      `${adds.length} to add, ${plan.filter((p) => p.action === 'same').length} unchanged, ${conflicts} conflict${conflicts === 1 ? '' : 's'}${values['dry-run'] ? ' (dry run: nothing changed)' : ''}`,
    );
    process.stdout.write(out.join('\n') + '\n');
    if (values['dry-run'] || adds.length === 0) return 0;

    const entryOf = (s: FoundServer) => (trusted ? s.entry : { ...s.entry, quarantined: true });
    if (client) {
      let failed = 0;
      for (const p of adds) {
        try {
          await client.request('server.add', { name: p.server.name, entry: entryOf(p.server), ...(trusted ? { trusted: true } : {}) });
        } catch (err) {
          failed++;
          const code = err instanceof ControlRequestError ? err.code : 'E_INTERNAL';
          process.stderr.write(`mcp-warden import: ${p.server.name}: ${code}: ${(err as Error).message}\n`);
        }
      }
      process.stdout.write(`added ${adds.length - failed} server(s) through the daemon\n`);
      return failed > 0 ? 1 : 0;
    }
    await updateConfigFile(configPath, (doc) => {
      if (doc.mcpServers === undefined) doc.mcpServers = {};
      for (const p of adds) doc.mcpServers[p.server.name] = entryOf(p.server);
    });
    process.stdout.write(`wrote ${adds.length} server(s) to ${configPath}\n`);
    return 0;
  } catch (err) {
    if (err instanceof ImportError) {
      process.stderr.write(`mcp-warden import: ${err.message}\n`);
      return err.exit;
    }
    if (err instanceof WardenError) {
      process.stderr.write(`mcp-warden import: ${err.code}: ${err.message}\n`);
      return err.code === 'E_CONFIG_INVALID' || err.code === 'E_CONFIG_UNREADABLE' ? 3 : 1;
    }
    process.stderr.write(`mcp-warden import: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await client?.close().catch(() => undefined);
  }
}
