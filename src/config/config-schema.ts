/**
 * Validation of the mcp-warden config format (docs/config.md is the user-facing description).
 *
 * Everything here is pure (no I/O) and never throws: malformed input becomes a list of
 * `ConfigIssue`s (each with a JSON path such as `$.mcpServers.memory.args`), unknown keys become
 * `ConfigWarning`s. The zod schemas check the type of each known field; the rules that span fields
 * (command vs url, server-type inference, unknown keys) are applied by hand so every problem of a
 * file is reported at once with a readable message.
 */
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_SETTINGS, type Settings } from '../core/settings.js';
import type { ConfigIssue, ConfigWarning, DockerOptions, ServerEntry, WardenConfig } from './config-types.js';
import { parseDockerOptions } from './docker-options.js';
import { parseToolFilterOptions } from './tool-filter-options.js';
import { describeType, joinPath } from './json-path.js';
import { isPlainObject } from '../core/plain-object.js';
// Re-exported: callers import them from here.
export {};

// ---------------------------------------------------------------------------------------------
// Result shapes
// ---------------------------------------------------------------------------------------------

export type ParseConfigResult =
  { ok: true; config: WardenConfig; warnings: ConfigWarning[] } | { ok: false; issues: ConfigIssue[]; warnings: ConfigWarning[] };

export type ParseServerEntryResult =
  { ok: true; entry: ServerEntry; warnings: ConfigWarning[] } | { ok: false; issues: ConfigIssue[]; warnings: ConfigWarning[] };

export type ParseJsonResult =
  { ok: true; value: unknown; warnings: ConfigWarning[] } | { ok: false; line: number; column: number; message: string };

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

/** `type` values that denote a remote server (Claude Code, Cursor and VS Code spellings). */
const REMOTE_SERVER_TYPES = ['http', 'sse', 'streamable-http', 'streamableHttp'] as const;
const SERVER_TYPES = ['stdio', ...REMOTE_SERVER_TYPES] as const;

/** Keys mcp-warden reads in a server entry. */
const KNOWN_SERVER_KEYS = [
  'command',
  'args',
  'env',
  'cwd',
  'type',
  'url',
  'headers',
  'disabled',
  'quarantined',
  'docker',
  'tools',
] as const;

/** Top-level keys mcp-warden reads (`$schema` is accepted silently for editor support). */
const KNOWN_TOP_LEVEL_KEYS = ['mcpServers', 'settings', '$schema'] as const;

/**
 * Server-entry keys other MCP clients write (Cursor, Cline, Roo Code, ...). They are ignored with an
 * info-level note instead of an "unknown key" warning; the value is the explanation shown.
 */
const IGNORED_CLIENT_KEYS: Readonly<Record<string, string>> = Object.freeze({
  envFile: 'ignored: mcp-warden does not read env files; the variables in it are NOT set — copy them into "env"',
  timeout: 'ignored: per-server timeouts are not supported; use settings.toolCallTimeoutMs / settings.initTimeoutMs',
  autoApprove: "ignored: another client's tool auto-approval list has no effect in mcp-warden",
  alwaysAllow: "ignored: another client's tool auto-approval list has no effect in mcp-warden",
  description: 'ignored (informational only)',
});

/** Hints for unknown keys that are not near-misses by spelling. */
const SERVER_KEY_HINTS: Readonly<Record<string, string>> = {
  cmd: 'did you mean "command"?',
  arguments: 'did you mean "args"?',
  environment: 'did you mean "env"?',
  serverUrl: 'did you mean "url"? (Windsurf spells it "serverUrl"; mcp-warden reads "url")',
  transport: 'did you mean "type"?',
  enabled: 'mcp-warden uses "disabled": true to turn a server off; "enabled" is not read',
};
const TOP_LEVEL_KEY_HINTS: Readonly<Record<string, string>> = {
  servers: 'mcp-warden reads servers from "mcpServers" (VS Code\'s "servers" key is not read)',
};

/** Largest delay Node timers accept (larger values fire after 1 ms). */
export const MAX_TIMER_MS = 2_147_483_647;

/** A number within a range. */
interface NumberRule {
  integer: boolean;
  min: number;
  max?: number;
}
/** One of a fixed set of strings (e.g. a mode). */
interface ChoiceRule {
  choice: readonly string[];
}
/** A list of strings, each matching `item` (e.g. origins). */
interface ListRule {
  list: { pattern: RegExp; describe: string };
}
type SettingRule<V = unknown> = V extends number ? NumberRule : V extends readonly string[] ? ListRule : ChoiceRule;
const ms = (min: number): NumberRule => ({ integer: true, min, max: MAX_TIMER_MS });
const count = (min: number): NumberRule => ({ integer: true, min });

/** The accepted values of every setting (docs/config.md shows the same table). */
const SETTING_RULES: Readonly<{ [K in keyof Settings]: SettingRule<Settings[K]> }> = Object.freeze({
  initTimeoutMs: ms(1),
  restartBackoffInitialMs: ms(0),
  restartBackoffMaxMs: ms(0),
  restartBackoffFactor: { integer: false, min: 1 },
  restartIntensityMax: count(0),
  restartIntensityWindowMs: ms(1),
  stopEofGraceMs: ms(0),
  stopTermGraceMs: ms(0),
  stopKillGraceMs: ms(0),
  reapMaxAttempts: count(1),
  reapBackoffInitialMs: ms(0),
  reapBackoffMaxMs: ms(0),
  toolCallTimeoutMs: ms(1),
  upstreamRequestTimeoutMs: ms(1),
  sessionIdleTtlMs: ms(1),
  maxSessions: count(1),
  clientRequestTimeoutMs: ms(1),
  mcpListPageSize: count(1),
  mcpKeepAliveMs: ms(0),
  shutdownBudgetMs: ms(1),
  stderrLinesPerSecond: count(0),
  stderrMaxLineBytes: count(1),
  logFileMaxBytes: count(1),
  logFileCount: count(0),
  httpMaxBodyBytes: count(1),
  httpHeadersTimeoutMs: ms(1),
  httpRequestTimeoutMs: ms(1),
  httpMaxConnections: count(1),
  logLinesPerSecond: count(0),
  quarantineNewServers: { integer: true, min: 0, max: 1 },
  // proper-lockfile's own floors: stale >= 2 s, update >= 1 s (and update is capped at stale / 2).
  lockStaleMs: ms(2_000),
  lockUpdateMs: ms(1_000),
  controlMaxConnections: count(1),
  controlMaxPayloadBytes: { integer: true, min: 1024, max: 100 * 1024 * 1024 },
  controlHeartbeatIntervalMs: ms(1),
  controlMaxBufferedBytes: count(1024),
  dockerCallTimeoutMs: ms(1),
  dockerStopGraceSeconds: { integer: true, min: 0, max: 3_600 },
  allowedOrigins: { list: { pattern: /^https?:\/\/[^/\s?#]+$/, describe: 'an origin like "https://app.example"' } },
  processTable: { choice: ['auto', 'proc', 'portable'] },
  processTableTimeoutMs: ms(1),
  configReloadDebounceMs: ms(0),
  quarantineScope: { choice: ['server', 'tool'] },
  mcpMaxResponseBytes: count(1024),
  mcpMaxBufferedBytes: count(1024),
  mcpMaxJsonDepth: count(1),
  upstreamMaxMessageBytes: count(1024),
  upstreamGarbageLinesMax: count(0),
  upstreamGarbageWindowMs: ms(1),
  metrics: { choice: ['on', 'off'] },
  callLog: { choice: ['on', 'off'] },
  callLogPayloads: { choice: ['none', 'arguments', 'all'] },
  callLogPayloadMaxBytes: count(64),
  callLogFlushMs: ms(1),
  callLogMaxBytes: count(1024),
  callLogFileCount: count(0),
  callLogMemoryEntries: count(1),
  callLogMaxPending: count(1),
  toolMode: { choice: ['all', 'search'] },
  toolSearchDefaultLimit: count(1),
  toolSearchMaxLimit: count(1),
  remotePingIntervalMs: ms(0),
  remoteConnectTimeoutMs: ms(1),
  remoteRetryAfterMaxMs: ms(0),
  oauthLoginTimeoutMs: ms(1),
});

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/** Edit distance counting insertions, deletions, substitutions and adjacent transpositions as 1. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest known key, if `key` looks like a typo of it (case-insensitive, small edit distance). */
export function suggestKey(key: string, candidates: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const cl = c.toLowerCase();
    if (cl === k) return c;
    const d = editDistance(k, cl);
    const limit = Math.max(1, Math.min(3, Math.floor(c.length / 3)));
    if (d <= limit && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function warnUnknownKeys(
  obj: Record<string, unknown>,
  known: readonly string[],
  at: string,
  warnings: ConfigWarning[],
  hints: Readonly<Record<string, string>> = {},
  ignored: Readonly<Record<string, string>> = {},
): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const p = joinPath(at, key);
    if (Object.hasOwn(ignored, key)) {
      warnings.push({ path: p, message: ignored[key]!, level: 'info' });
      continue;
    }
    // Explicit hints (aliases of other clients) win over spelling near-misses ("cmd" is not "cwd").
    const suggestion = suggestKey(
      key,
      known.filter((k) => k !== '$schema'),
    );
    const hint = Object.hasOwn(hints, key) ? hints[key] : suggestion ? `did you mean ${JSON.stringify(suggestion)}?` : undefined;
    warnings.push({
      path: p,
      message: hint ? `unknown key, ignored (${hint})` : 'unknown key, ignored',
      level: 'warning',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Server names
// ---------------------------------------------------------------------------------------------

/** Server names become tool prefixes (`<server>__<tool>`). Returns why `name` is invalid, or undefined. */
export function validateServerName(name: string): string | undefined {
  if (typeof name !== 'string') return 'must be a string';
  if (name.length === 0) return 'must not be empty';
  if (name.length > 32) return `must be at most 32 characters (it has ${name.length})`;
  if (!/^[A-Za-z0-9_-]+$/.test(name)) return 'may only contain letters A-Z a-z, digits 0-9, "_" and "-"';
  if (name.startsWith('_') || name.endsWith('_')) return 'must not start or end with "_"';
  if (name.includes('__')) return 'must not contain "__" (it separates server and tool names)';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Zod schemas (types of the individual fields; cross-field rules are in parseServerEntry)
// ---------------------------------------------------------------------------------------------

const NUL = '\u0000';

/** A string handed to the process spawner: must not contain NUL bytes. */
function spawnString(what: string, opts: { nonEmpty?: boolean } = {}) {
  return z
    .string({ error: (iss) => `expected ${what} as a string, got ${describeType(iss.input)}` })
    .refine((s) => !opts.nonEmpty || s.length > 0, { error: `${what} must not be empty` })
    .refine((s) => !s.includes(NUL), { error: `${what} must not contain NUL characters` });
}

function stringMap(what: string, keySchema: z.ZodType<string> = z.string()) {
  return z.record(
    keySchema,
    z
      .string({ error: (iss) => `expected a string value, got ${describeType(iss.input)}` })
      .refine((s) => !s.includes(NUL), { error: 'value must not contain NUL characters' }),
    { error: (iss) => `expected ${what} (an object of string values), got ${describeType(iss.input)}` },
  );
}

function bool() {
  return z.boolean({ error: (iss) => `expected true or false, got ${describeType(iss.input)}` });
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Field types of one raw server entry (unknown keys are stripped here and warned about separately). */
const ServerEntrySchema = z.object({
  command: spawnString('the command', { nonEmpty: true }).optional(),
  args: z
    .array(spawnString('each argument'), {
      error: (iss) => `expected an array of strings, got ${describeType(iss.input)}`,
    })
    .optional(),
  env: stringMap(
    'an environment map',
    z.string().refine((k) => k.length > 0 && !k.includes('=') && !k.includes(NUL), {
      error: 'environment variable names must be non-empty and must not contain "=" or NUL',
    }),
  ).optional(),
  cwd: spawnString('the working directory', { nonEmpty: true })
    .refine((s) => !s.startsWith('~'), {
      error: '"~" is not expanded; use an absolute path (or one relative to the config file)',
    })
    .optional(),
  type: z
    .enum(SERVER_TYPES, {
      error: (iss) =>
        `expected one of ${SERVER_TYPES.map((t) => JSON.stringify(t)).join(', ')}, got ${
          typeof iss.input === 'string' ? JSON.stringify(iss.input) : describeType(iss.input)
        }`,
    })
    .optional(),
  url: z
    .string({ error: (iss) => `expected the URL as a string, got ${describeType(iss.input)}` })
    .refine(isHttpUrl, { error: 'expected an absolute http:// or https:// URL' })
    .optional(),
  headers: stringMap('a header map').optional(),
  disabled: bool().optional(),
  quarantined: bool().optional(),
  docker: z
    .record(z.string(), z.unknown(), {
      error: (iss) => `expected an object, got ${describeType(iss.input)}`,
    })
    .optional(),
  // Checked by parseToolFilterOptions (config/tool-filter-options.ts), which names each bad field.
  tools: z.unknown().optional(),
});

function describeRule(r: NumberRule): string {
  let s: string;
  if (r.integer) s = r.min === 0 ? 'a non-negative integer' : r.min === 1 ? 'a positive integer' : `an integer >= ${r.min}`;
  else s = `a number >= ${r.min}`;
  if (r.max !== undefined) s += ` no greater than ${r.max}`;
  return s;
}

function settingSchema(rule: NumberRule | ChoiceRule | ListRule): z.ZodType {
  if ('choice' in rule) {
    const desc = `one of ${rule.choice.map((c) => JSON.stringify(c)).join(', ')}`;
    return z.unknown().superRefine((v, ctx) => {
      if (typeof v !== 'string' || !rule.choice.includes(v)) {
        ctx.addIssue({ code: 'custom', message: `expected ${desc}, got ${typeof v === 'string' ? JSON.stringify(v) : describeType(v)}` });
      }
    });
  }
  if ('list' in rule) {
    const { pattern, describe } = rule.list;
    return z
      .array(z.string({ error: (iss) => `expected ${describe} as a string, got ${describeType(iss.input)}` }), {
        error: (iss) => `expected an array of ${describe}s, got ${describeType(iss.input)}`,
      })
      .superRefine((list, ctx) => {
        list.forEach((v, i) => {
          if (!pattern.test(v)) ctx.addIssue({ code: 'custom', path: [i], message: `expected ${describe}, got ${JSON.stringify(v)}` });
        });
      });
  }
  const desc = describeRule(rule);
  return z.number({ error: (iss) => `expected ${desc}, got ${describeType(iss.input)}` }).superRefine((v, ctx) => {
    const ok = Number.isFinite(v) && (!rule.integer || Number.isInteger(v)) && v >= rule.min && (rule.max === undefined || v <= rule.max);
    if (!ok) ctx.addIssue({ code: 'custom', message: `expected ${desc}, got ${v}` });
  });
}

const SETTING_KEYS = Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[];

/** Any subset of Settings, each value range-checked per SETTING_RULES. */
const SettingsSchema = z.object(
  Object.fromEntries(SETTING_KEYS.map((k) => [k, settingSchema(SETTING_RULES[k] as NumberRule | ChoiceRule | ListRule).optional()])) as {
    [K in keyof Settings]: z.ZodOptional<z.ZodType<Settings[K]>>;
  },
);

function pushZodIssues(error: z.ZodError, at: string, issues: ConfigIssue[]): void {
  for (const iss of error.issues) {
    let message = iss.message;
    if (iss.code === 'invalid_key' && iss.issues[0]) message = iss.issues[0].message;
    const p = iss.path.reduce<string>((acc, seg) => joinPath(acc, seg as PropertyKey), at);
    issues.push({ path: p, message });
  }
}

// ---------------------------------------------------------------------------------------------
// Server entries
// ---------------------------------------------------------------------------------------------

function serverPath(name: string): string {
  return joinPath('$.mcpServers', name);
}

function parseServerEntryInto(
  name: string,
  raw: unknown,
  baseDir: string,
  issues: ConfigIssue[],
  warnings: ConfigWarning[],
): ServerEntry | undefined {
  const at = serverPath(name);
  const issuesBefore = issues.length;

  const nameProblem = validateServerName(name);
  if (nameProblem) issues.push({ path: at, message: `invalid server name ${JSON.stringify(name)}: ${nameProblem}` });

  if (!isPlainObject(raw)) {
    issues.push({ path: at, message: `expected an object describing the server, got ${describeType(raw)}` });
    return undefined;
  }

  warnUnknownKeys(raw, KNOWN_SERVER_KEYS, at, warnings, SERVER_KEY_HINTS, IGNORED_CLIENT_KEYS);

  const parsed = ServerEntrySchema.safeParse(raw);
  if (!parsed.success) pushZodIssues(parsed.error, at, issues);

  // Cross-field rules, evaluated on the raw values so they are reported even when a type is wrong.
  const hasCommand = raw.command !== undefined;
  const hasUrl = raw.url !== undefined;
  const declared = typeof raw.type === 'string' && (SERVER_TYPES as readonly string[]).includes(raw.type) ? raw.type : undefined;
  const kind: 'stdio' | 'remote' =
    declared !== undefined ? (declared === 'stdio' ? 'stdio' : 'remote') : hasUrl && !hasCommand ? 'remote' : 'stdio';

  if (hasCommand && hasUrl) {
    issues.push({
      path: at,
      message: 'both "command" and "url" are set; use "command" for a local (stdio) server or "url" for a remote one, not both',
    });
  } else if (kind === 'stdio' && !hasCommand) {
    if (hasUrl) {
      issues.push({
        path: joinPath(at, 'type'),
        message: 'type "stdio" needs "command"; "url" is only used with a remote type ("http", "sse", "streamable-http")',
      });
    } else {
      issues.push({ path: at, message: 'missing "command" (the program to run), or "url" for a remote server' });
    }
  } else if (kind === 'remote' && !hasUrl) {
    issues.push({
      path: at,
      message: `type ${JSON.stringify(declared)} is a remote server type and needs "url" (use type "stdio" with "command" for a local server)`,
    });
  }

  if (kind === 'remote') {
    for (const key of ['args', 'env', 'cwd', 'docker'] as const) {
      if (raw[key] !== undefined) {
        warnings.push({ path: joinPath(at, key), message: 'ignored for remote servers', level: 'warning' });
      }
    }
  } else if (raw.headers !== undefined) {
    warnings.push({
      path: joinPath(at, 'headers'),
      message: 'ignored: "headers" only applies to remote servers',
      level: 'warning',
    });
  }

  // Container options (docs/docker.md); with them, cwd is a path inside the container.
  let docker: DockerOptions | undefined;
  if (kind === 'stdio' && isPlainObject(raw.docker)) {
    docker = parseDockerOptions(raw.docker, joinPath(at, 'docker'), baseDir, issues, warnings);
    if (typeof raw.cwd === 'string' && raw.cwd !== '' && !raw.cwd.startsWith('/')) {
      issues.push({
        path: joinPath(at, 'cwd'),
        message: 'with "docker", cwd is the working directory inside the container and must be an absolute path',
      });
    }
  }

  const tools = raw.tools === undefined ? undefined : parseToolFilterOptions(raw.tools, joinPath(at, 'tools'), issues, warnings);

  if (issues.length > issuesBefore || !parsed.success) return undefined;

  const d = parsed.data;
  const entry: ServerEntry = {
    type: kind,
    args: d.args ?? [],
    env: d.env ?? {},
    disabled: d.disabled ?? false,
    quarantined: d.quarantined ?? false,
  };
  if (kind === 'stdio') {
    entry.command = d.command;
    // Relative cwd is resolved against the config file's directory (never the daemon's cwd).
    if (d.cwd !== undefined) entry.cwd = docker ? d.cwd : path.resolve(baseDir, d.cwd);
  } else {
    entry.url = d.url;
    if (d.headers !== undefined) entry.headers = d.headers;
    // `type` omitted: Streamable HTTP first, legacy SSE on the statuses the spec names (remote-transport.ts).
    if (declared === 'sse') entry.transport = 'sse';
    else if (declared !== undefined) entry.transport = 'http';
  }
  if (docker) entry.docker = docker;
  if (tools) entry.tools = tools;
  return entry;
}

/**
 * Validates and normalizes one server entry (used for whole files and by the control channel).
 * `baseDir` (absolute) is the directory a relative `cwd` is resolved against. Never throws.
 * Paths in issues/warnings are `$.mcpServers.<name>...`, as in a whole file.
 */
export function parseServerEntry(name: string, raw: unknown, baseDir: string): ParseServerEntryResult {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigWarning[] = [];
  try {
    const entry = parseServerEntryInto(name, raw, baseDir, issues, warnings);
    if (entry && issues.length === 0) return { ok: true, entry, warnings };
  } catch (err) {
    issues.push({ path: serverPath(String(name)), message: `could not validate: ${errorText(err)}` });
  }
  return { ok: false, issues, warnings };
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

function parseSettingsInto(raw: unknown, issues: ConfigIssue[], warnings: ConfigWarning[]): Settings | undefined {
  const at = '$.settings';
  if (raw === undefined) return { ...DEFAULT_SETTINGS };
  if (!isPlainObject(raw)) {
    issues.push({ path: at, message: `expected an object of settings, got ${describeType(raw)}` });
    return undefined;
  }
  warnUnknownKeys(raw, SETTING_KEYS, at, warnings);
  const parsed = SettingsSchema.safeParse(raw);
  if (!parsed.success) {
    pushZodIssues(parsed.error, at, issues);
    return undefined;
  }
  const merged: Settings = { ...DEFAULT_SETTINGS };
  for (const k of SETTING_KEYS) {
    const v = parsed.data[k];
    if (v !== undefined) (merged as Record<keyof Settings, unknown>)[k] = v;
  }
  for (const prefix of ['restartBackoff', 'reapBackoff'] as const) {
    const initial = merged[`${prefix}InitialMs`];
    const max = merged[`${prefix}MaxMs`];
    if (max < initial) {
      warnings.push({
        path: joinPath(at, `${prefix}MaxMs`),
        message: `${prefix}MaxMs (${max}) is below ${prefix}InitialMs (${initial}); every delay will be ${max} ms`,
        level: 'warning',
      });
    }
  }
  if (merged.lockUpdateMs > merged.lockStaleMs / 2) {
    warnings.push({
      path: joinPath(at, 'lockUpdateMs'),
      message: `lockUpdateMs (${merged.lockUpdateMs}) is above half of lockStaleMs (${merged.lockStaleMs}); the lock is refreshed every ${Math.max(1_000, Math.floor(merged.lockStaleMs / 2))} ms`,
      level: 'warning',
    });
  }
  if (merged.httpRequestTimeoutMs < merged.httpHeadersTimeoutMs) {
    // Node refuses a request deadline shorter than the head deadline (http-server.ts raises it).
    warnings.push({
      path: joinPath(at, 'httpRequestTimeoutMs'),
      message: `httpRequestTimeoutMs (${merged.httpRequestTimeoutMs}) is below httpHeadersTimeoutMs (${merged.httpHeadersTimeoutMs}); requests get ${merged.httpHeadersTimeoutMs} ms`,
      level: 'warning',
    });
  }
  return merged;
}

// ---------------------------------------------------------------------------------------------
// Whole config
// ---------------------------------------------------------------------------------------------

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Validates a parsed config document. Pure, never throws. `opts.baseDir` must be absolute: it is
 * the config file's directory, against which relative `cwd` values are resolved.
 */
export function parseConfig(raw: unknown, opts: { baseDir: string }): ParseConfigResult {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigWarning[] = [];
  try {
    if (!isPlainObject(raw)) {
      issues.push({ path: '$', message: `expected a JSON object at the top level, got ${describeType(raw)}` });
      return { ok: false, issues, warnings };
    }
    warnUnknownKeys(raw, KNOWN_TOP_LEVEL_KEYS, '$', warnings, TOP_LEVEL_KEY_HINTS);

    const mcpServers: Record<string, ServerEntry> = {};
    const servers = raw.mcpServers;
    if (servers === undefined) {
      warnings.push({ path: '$.mcpServers', message: 'missing; no servers are configured', level: 'warning' });
    } else if (!isPlainObject(servers)) {
      issues.push({
        path: '$.mcpServers',
        message: `expected an object mapping server names to server entries, got ${describeType(servers)}`,
      });
    } else {
      for (const [name, entryRaw] of Object.entries(servers)) {
        const entry = parseServerEntryInto(name, entryRaw, opts.baseDir, issues, warnings);
        if (entry) mcpServers[name] = entry;
      }
    }

    const settings = parseSettingsInto(raw.settings, issues, warnings);

    if (issues.length > 0 || !settings) return { ok: false, issues, warnings };
    return { ok: true, config: { mcpServers, settings }, warnings };
  } catch (err) {
    issues.push({ path: '$', message: `could not validate: ${errorText(err)}` });
    return { ok: false, issues, warnings };
  }
}

// ---------------------------------------------------------------------------------------------
// JSON text → value, with line/column on syntax errors and duplicate-key warnings
// ---------------------------------------------------------------------------------------------

class JsonSyntaxError {
  constructor(
    readonly offset: number,
    readonly message: string,
  ) {}
}
class TooDeep {}

const MAX_SCAN_DEPTH = 512;

/** Validates JSON syntax, throwing JsonSyntaxError at the first error; returns duplicate-key paths. */
function scanJson(text: string): string[] {
  const n = text.length;
  const duplicates: string[] = [];
  let i = 0;

  const fail = (at: number, message: string): never => {
    throw new JsonSyntaxError(at, message);
  };
  const show = (at: number): string => {
    const cp = text.codePointAt(at);
    if (cp === undefined) return 'end of file';
    const ch = String.fromCodePoint(cp);
    if (cp < 0x20) return `control character U+${cp.toString(16).padStart(4, '0').toUpperCase()}`;
    return ch === "'" ? `"'"` : `'${ch}'`;
  };
  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else if (c === 0x2f /* / */ && (text[i + 1] === '/' || text[i + 1] === '*')) fail(i, 'comments are not allowed in JSON');
      else break;
    }
  };
  const string = (): void => {
    const start = i;
    i++; // opening quote
    for (;;) {
      if (i >= n) fail(start, 'unterminated string (missing closing ")');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else fail(i, 'invalid escape sequence in string');
      } else if (c < 0x20) {
        fail(i, c === 0x0a ? 'unterminated string (line break inside a string)' : 'control characters inside strings must be escaped');
      } else i++;
    }
  };
  const numberRe = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (p: string, depth: number): void => {
    if (depth > MAX_SCAN_DEPTH) throw new TooDeep();
    ws();
    if (i >= n) fail(i, 'unexpected end of file; expected a value');
    const c = text[i]!;
    if (c === '{') return object(p, depth);
    if (c === '[') return array(p, depth);
    if (c === '"') return string();
    if (c === "'") fail(i, 'strings must use double quotes (")');
    if (c === '-' || (c >= '0' && c <= '9')) {
      numberRe.lastIndex = i;
      const m = numberRe.exec(text);
      if (!m) return fail(i, 'invalid number');
      if (/^-?0$/.test(m[0]) && /[0-9]/.test(text[i + m[0].length] ?? '')) fail(i, 'numbers must not have leading zeros');
      i += m[0].length;
      return;
    }
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    const word = /[A-Za-z_][A-Za-z0-9_]*/y;
    word.lastIndex = i;
    const w = word.exec(text);
    fail(i, `unexpected ${w ? JSON.stringify(w[0]) : show(i)}; expected a value (a string, number, object, array, true, false or null)`);
  };
  const object = (p: string, depth: number): void => {
    i++; // {
    const keys = new Set<string>();
    ws();
    if (text[i] === '}') {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (i >= n) fail(i, 'unexpected end of file inside an object (missing "}")');
      if (text[i] !== '"') {
        if (text[i] === '}') fail(i, 'trailing comma before "}" is not allowed');
        if (text[i] === "'") fail(i, 'property names must use double quotes (")');
        fail(i, `expected a double-quoted property name, got ${show(i)}`);
      }
      const start = i;
      string();
      const key = JSON.parse(text.slice(start, i)) as string;
      const kp = joinPath(p, key);
      if (keys.has(key)) duplicates.push(kp);
      else keys.add(key);
      ws();
      if (text[i] !== ':') fail(i, `expected ":" after property name, got ${show(i)}`);
      i++;
      value(kp, depth + 1);
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return;
      }
      if (i >= n) fail(i, 'unexpected end of file inside an object (missing "}")');
      fail(i, `expected "," or "}" after a property value, got ${show(i)} (is a comma missing?)`);
    }
  };
  const array = (p: string, depth: number): void => {
    i++; // [
    ws();
    if (text[i] === ']') {
      i++;
      return;
    }
    for (let index = 0; ; index++) {
      ws();
      if (text[i] === ']') fail(i, 'trailing comma before "]" is not allowed');
      value(joinPath(p, index), depth + 1);
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return;
      }
      if (i >= n) fail(i, 'unexpected end of file inside an array (missing "]")');
      fail(i, `expected "," or "]" after an array element, got ${show(i)} (is a comma missing?)`);
    }
  };

  ws();
  if (i >= n) fail(0, 'the file is empty (expected a JSON object)');
  value('$', 0);
  ws();
  if (i < n) fail(i, `unexpected ${show(i)} after the end of the JSON value`);
  return duplicates;
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < offset && k < text.length; k++) {
    if (text.charCodeAt(k) === 0x0a) {
      line++;
      lineStart = k + 1;
    }
  }
  // Column in characters (code points), 1-based, as editors show it.
  return { line, column: [...text.slice(lineStart, offset)].length + 1 };
}

/**
 * Parses JSON text (a leading UTF-8 BOM is ignored). On a syntax error returns the 1-based line and
 * column and a reason; on success warns about duplicate keys (JSON.parse keeps the last one).
 * Pure, never throws.
 */
export function parseJsonText(input: string): ParseJsonResult {
  const text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  let duplicates: string[] = [];
  try {
    duplicates = scanJson(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) return { ok: false, ...lineColumn(text, err.offset), message: err.message };
    // TooDeep (or a scanner bug): fall back to JSON.parse's own verdict below.
  }
  try {
    const value: unknown = JSON.parse(text);
    const warnings: ConfigWarning[] = duplicates.map((p) => ({
      path: p,
      message: 'duplicate key; only the last occurrence is used',
      level: 'warning',
    }));
    return { ok: true, value, warnings };
  } catch (err) {
    const message = errorText(err);
    const m = /position (\d+)/.exec(message);
    const offset = m ? Number(m[1]) : text.length;
    return { ok: false, ...lineColumn(text, offset), message };
  }
}
