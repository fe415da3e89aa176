/**
 * `mcp-warden connect CLIENT`: writes the entry that points CLIENT at mcp-warden into its config
 * file, keeping every other key of that file as it was (src/config/client-configs.ts has the
 * formats). The write is atomic (src/adapters/store/config-file.ts `writeConfigAtomic`).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { locateDaemon } from './daemon-locator.js';
import { stripJsonComments } from './import-command.js';
import { CLIENTS, clientConfigPath, clientSupportsHttp, connectEntry, isClientId } from '../config/client-configs.js';
import { writeConfigAtomic } from '../adapters/store/config-file.js';
import { defaultDataDir } from '../core/defaults.js';
import { cliBundlePath } from '../core/package-root.js';
import { isLoopbackHost } from '../adapters/http/request-guards.js';

export const CONNECT_HELP = `Usage: mcp-warden connect CLIENT [options]

Adds an "mcp-warden" server to CLIENT's config file (${CLIENTS.join(', ')}), at its usual Linux
location, keeping everything else in the file. An entry of the same name is replaced.

The entry is an HTTP one (the running daemon's /mcp URL) when the client supports HTTP and a
daemon is running for the data dir; otherwise it launches 'mcp-warden stdio --data-dir DIR' (which
uses the daemon if one runs, or starts one for as long as the client runs). Claude Desktop's file
only takes commands, so it always gets the stdio entry.

Options:
  --dry-run         print the file it would write and the entry, change nothing
  --stdio           write the stdio entry even if HTTP would do
  --http            write the HTTP entry (needs a running daemon; not for claude-desktop)
  --name NAME       the entry's name in the client's file (default mcp-warden)
  --file FILE       the client's config file, instead of its usual location
  --data-dir DIR    data directory (default $MCP_WARDEN_HOME or ~/.mcp-warden)
  -h, --help        show this help

Exit codes: 0 written (or dry run); 1 the client's file cannot be read, parsed or written;
2 usage error (or --http without a running daemon).
`;

export async function runConnect(argv: string[]): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        'dry-run': { type: 'boolean' },
        stdio: { type: 'boolean' },
        http: { type: 'boolean' },
        name: { type: 'string' },
        file: { type: 'string' },
        'data-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`mcp-warden connect: ${(err as Error).message}\nsee mcp-warden connect --help\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(CONNECT_HELP);
    return 0;
  }
  const usage = (m: string) => {
    process.stderr.write(`mcp-warden connect: ${m}\nsee mcp-warden connect --help\n`);
    return 2;
  };
  const [client, extra] = positionals;
  if (client === undefined) return usage(`name the client: ${CLIENTS.join(', ')}`);
  if (!isClientId(client)) return usage(`unknown client "${client}"; expected one of ${CLIENTS.join(', ')}`);
  if (extra !== undefined) return usage(`unexpected argument "${extra}"`);
  if (values.stdio && values.http) return usage('give --stdio or --http, not both');
  if (values.http && !clientSupportsHttp(client)) return usage(`${client} only launches commands; it cannot take an HTTP entry`);
  const dataDir = path.resolve(values['data-dir'] ?? defaultDataDir());
  const name = values.name ?? 'mcp-warden';
  const file = path.resolve(values.file ?? clientConfigPath(client, homedir(), process.env.XDG_CONFIG_HOME));

  const found = await locateDaemon(dataDir);
  const httpUrl = found.kind === 'running' && isLoopbackHost(found.info.host) ? `${found.info.url.replace(/\/+$/, '')}/mcp` : undefined;
  if (values.http && !httpUrl)
    return usage(`--http needs a daemon running on a loopback address for ${dataDir} (start one with mcp-warden serve)`);
  const useHttp = !values.stdio && clientSupportsHttp(client) && httpUrl !== undefined;
  const cliMain = cliBundlePath();
  const { listKey, entry } = connectEntry(
    client,
    useHttp
      ? { kind: 'http', url: httpUrl! }
      : { kind: 'stdio', command: process.execPath, args: [cliMain, 'stdio', '--data-dir', dataDir] },
  );

  let doc: Record<string, unknown> = {};
  try {
    const text = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // VS Code's files are JSONC; rewriting one drops its comments, which we will not do silently.
      JSON.parse(stripJsonComments(text));
      process.stderr.write(
        `mcp-warden connect: ${file} has comments or trailing commas; add this under "${listKey}" by hand:\n"${name}": ${JSON.stringify(entry, null, 2)}\n`,
      );
      return 1;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('the top level is not a JSON object');
    doc = parsed as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      process.stderr.write(`mcp-warden connect: cannot use ${file}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const list = doc[listKey];
  if (list !== undefined && (typeof list !== 'object' || list === null || Array.isArray(list))) {
    process.stderr.write(`mcp-warden connect: "${listKey}" in ${file} is not an object; not touching the file\n`);
    return 1;
  }
  const servers = (list ?? {}) as Record<string, unknown>;
  const before = servers[name];
  const same = JSON.stringify(before) === JSON.stringify(entry);
  const kind = useHttp ? `HTTP ${httpUrl}` : 'stdio (mcp-warden stdio)';
  if (values['dry-run']) {
    process.stdout.write(
      `would ${same ? 'leave' : before === undefined ? 'add' : 'replace'} "${listKey}.${name}" in ${file} (${kind}):\n${JSON.stringify(entry, null, 2)}\n(dry run: nothing changed)\n`,
    );
    return 0;
  }
  if (same) {
    process.stdout.write(`${client} is already connected: "${listKey}.${name}" in ${file}\n`);
    return 0;
  }
  doc[listKey] = { ...servers, [name]: entry };
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeConfigAtomic(file, doc);
  } catch (err) {
    process.stderr.write(`mcp-warden connect: cannot write ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(
    `${before === undefined ? 'added' : 'replaced'} "${listKey}.${name}" in ${file} (${kind}); restart ${client} to pick it up\n`,
  );
  return 0;
}
