/**
 * The control-channel protocol `mcp-warden.v1` (docs/control-protocol.md is the user-facing description;
 * docs/control-protocol.schema.json is generated from the schemas here by `writeProtocolSchema`).
 *
 * One JSON object per WebSocket text frame, in both directions. Every client→daemon message is
 * validated on receipt with the zod schemas below; the daemon→client schemas document (and the tests
 * check) what the daemon sends. Nothing a UI receives contains a secret: servers are `ServerView`s,
 * echoed config entries have env values and headers redacted.
 *
 * Pure module: no I/O except `writeProtocolSchema`.
 */
import { writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { pickCodes } from '../core/error-catalogue.js';

/** The subprotocol name a client must offer (and the daemon selects). */
export const CONTROL_PROTOCOL = 'mcp-warden.v1';
/** Browsers cannot set headers: the token may travel as the subprotocol entry `auth.<token>` (never echoed back). */
export const AUTH_PROTOCOL_PREFIX = 'auth.';
/** The WebSocket path on the daemon's HTTP server. */
export const CONTROL_PATH = '/ws';

/**
 * Error codes of the control channel (besides the daemon's own E_* codes, e.g. E_CONFIG_INVALID): a view
 * of the one catalogue, src/core/error-catalogue.ts, where each is defined with its meaning (and, for
 * the upgrade refusals TOO_MANY_CONNECTIONS and BAD_SUBPROTOCOL, its HTTP status).
 */
export const ControlErrorCodes = pickCodes([
  'BAD_JSON',
  'BAD_MESSAGE',
  'UNKNOWN_COMMAND',
  'BAD_ARGS',
  'SERVER_EXISTS',
  'UNKNOWN_SERVER',
  'SERVER_DISABLED',
  'NOT_AVAILABLE',
  'BUSY',
  'SHUTTING_DOWN',
  'TOO_MANY_CONNECTIONS',
  'BAD_SUBPROTOCOL',
  'INTERNAL',
]);

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/** Correlates a command with its result. Echoed verbatim. */
const RequestIdSchema = z
  .union([z.string().min(1).max(128), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)])
  .describe('Chosen by the client; echoed in the result. A string (1-128 chars) or a non-negative integer.');
export type RequestId = z.infer<typeof RequestIdSchema>;

const ServerNameSchema = z
  .string()
  .min(1)
  .max(32)
  .describe('A server name as in the config file (letters, digits, "_" and "-"; validated by the daemon).');

const NameArgs = z.strictObject({ name: ServerNameSchema });

const ErrorInfoSchema = z.object({
  code: z.string().describe("A stable E_* code (ControlErrorCodes or the daemon's error codes)."),
  message: z.string(),
  /** Config validation problems (server.add); paths are JSON paths as in a whole config file. */
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});
export type ControlErrorInfo = z.infer<typeof ErrorInfoSchema>;

// ---------------------------------------------------------------------------------------------
// Commands: name → args schema
// ---------------------------------------------------------------------------------------------

const CommandArgsSchemas = {
  'server.list': z.strictObject({}).describe('The servers as ServerView objects.'),
  'server.add': z
    .strictObject({
      name: ServerNameSchema,
      entry: z
        .record(z.string(), z.unknown())
        .describe('A server entry exactly as in the config file (docs/config.md); validated like one.'),
      trusted: z
        .boolean()
        .optional()
        .describe(
          'Start the server trusted (its first tool list becomes its approved baseline). Without it, and with the default settings.quarantineNewServers = 1, the server starts quarantined: none of its tools reach MCP clients until it is approved.',
        ),
    })
    .describe('Validate, persist to the config file, then start the server. Refuses an existing name.'),
  'server.remove': NameArgs.describe('Stop the server and delete its entry from the config file.'),
  'server.enable': NameArgs.describe('Persist `disabled: false` (if it was true) and start the server.'),
  'server.disable': NameArgs.describe('Persist `disabled: true` and stop the server (the entry is kept).'),
  'server.restart': NameArgs.describe('Stop and start the server again (also leaves a crash-loop halt).'),
  'server.approve': z
    .strictObject({
      name: ServerNameSchema,
      fingerprint: z
        .string()
        .regex(/^[0-9a-f]{64}$/, 'a SHA-256 hex digest as server.tools returned it')
        .describe(
          'The `fingerprint` server.tools returned for the tools the person inspected; refused (E_TOOLS_MISMATCH) if the tools changed since.',
        ),
    })
    .describe('Approve exactly the tools that were shown: record their fingerprints, persist `quarantined: false` and expose them.'),
  'server.quarantine': NameArgs.describe("Persist `quarantined: true` and hide the server's tools (it keeps running)."),
  'server.tools': NameArgs.describe(
    'The tools the server listed (everything a client sees of each), also while quarantined, with their set `fingerprint` (what server.approve takes), `changes` against the approved record (null without one) and advisory `flags` for hidden or unexpected text.',
  ),
  reap: z
    .strictObject({ dryRun: z.boolean().optional().describe('Only report what would be killed.') })
    .describe("Run the startup reaper now: kill what dead daemon instances left behind (never a live daemon's). Returns its report."),
  shutdown: z.strictObject({}).describe('Reply, then stop the daemon gracefully.'),
  'calls.list': z
    .strictObject({
      server: ServerNameSchema.optional().describe('Only calls routed to this server.'),
      limit: z.number().int().min(1).max(100_000).optional().describe('At most this many (the most recent); default: all kept in memory.'),
    })
    .describe(
      'The most recent tool calls the daemon keeps in memory (settings.callLogMemoryEntries), newest last: `{calls: CallEntry[]}`. E_NOT_AVAILABLE when settings.callLog is "off". New calls arrive as `calls` events.',
    ),
  'auth.login': NameArgs.describe(
    'Start an OAuth login for a remote server: returns `authorizationUrl` for a person to open. The authorization server redirects to the daemon (/oauth/callback); the tokens are stored in the data dir (never sent over the channel) and the server restarted.',
  ),
  'auth.wait': NameArgs.describe(
    'Wait until the login under way for the server stored its tokens (`{authorized: true}`), or fails (E_AUTH_LOGIN_FAILED, E_AUTH_LOGIN_TIMEOUT after oauthLoginTimeoutMs).',
  ),
  'auth.logout': NameArgs.describe(
    "Forget the server's OAuth tokens and client registration, and restart it (it then waits in needsAuth).",
  ),
} as const;

export type CommandName = keyof typeof CommandArgsSchemas;
export const COMMAND_NAMES = Object.keys(CommandArgsSchemas) as CommandName[];
export type CommandArgs<C extends CommandName> = z.infer<(typeof CommandArgsSchemas)[C]>;

function isCommandName(s: unknown): s is CommandName {
  return typeof s === 'string' && Object.hasOwn(CommandArgsSchemas, s);
}

// ---------------------------------------------------------------------------------------------
// Client → daemon
// ---------------------------------------------------------------------------------------------

/** Envelope of a command; `args` is checked against CommandArgsSchemas[command] in a second step. */
const CommandEnvelopeSchema = z.object({
  type: z.literal('command'),
  id: RequestIdSchema,
  command: z.string().min(1).max(64),
  args: z.unknown().optional(),
});

const SubscribeMessageSchema = z
  .strictObject({
    type: z.literal('subscribe'),
    logs: z
      .array(z.union([ServerNameSchema, z.literal('*')]))
      .max(256)
      .describe('Servers whose log records to stream (replaces the previous set; [] stops). "*" = every record, daemon ones included.'),
  })
  .describe('Opt in to log records. Server events are always sent.');

const PingMessageSchema = z
  .strictObject({ type: z.literal('ping'), id: RequestIdSchema.optional() })
  .describe('Application-level ping (browsers cannot send WebSocket pings); answered with pong.');

/** One schema per command, for the JSON Schema export (receipt validation uses the two-step path). */
const commandMessageSchemas = COMMAND_NAMES.map((name) =>
  z.strictObject({
    type: z.literal('command'),
    id: RequestIdSchema,
    command: z.literal(name),
    args: CommandArgsSchemas[name].optional(),
  }),
);

export const ClientMessageSchema = z.union([SubscribeMessageSchema, PingMessageSchema, ...commandMessageSchemas]);

// ---------------------------------------------------------------------------------------------
// Daemon → client
// ---------------------------------------------------------------------------------------------

const ResourceCountsSchema = z.record(z.string(), z.number().int().min(0));

const ServerViewSchema = z.object({
  name: z.string(),
  state: z.string().describe('Dotted state path, e.g. "running", "starting.backoff"; "disabled" for a disabled entry.'),
  quarantined: z.boolean(),
  attempt: z.number().int(),
  restartsInWindow: z.number().int(),
  reapAttempt: z.number().int(),
  lastError: z.object({ code: z.string(), message: z.string(), at: z.number() }).nullable(),
  pid: z.number().int().nullable(),
  toolCount: z.number().int(),
  upSince: z.number().nullable(),
  resources: ResourceCountsSchema,
  warnings: z
    .array(z.string())
    .optional()
    .describe(
      'What the server can reach on the host beyond the hardened container defaults (privileged, host mounts); absent when nothing.',
    ),
});

const ConfigStatusSchema = z.union([
  z.object({ ok: z.literal(true), path: z.string(), loadedAt: z.number() }),
  z.object({ ok: z.literal(false), path: z.string(), error: z.object({ code: z.string(), message: z.string() }), at: z.number() }),
]);

const CallEntrySchema = z.object({
  time: z.string().describe('When the call arrived (ISO 8601, UTC).'),
  server: z.string().describe('The server the tool name routes to ("" when it names none).'),
  tool: z.string().describe("The upstream's own tool name."),
  session: z.string().nullable().describe("The client's MCP session id."),
  durationMs: z.number(),
  outcome: z.enum(['ok', 'tool_error', 'error', 'timeout', 'cancelled']),
  errorCode: z.string().nullable().describe('The E_* code of a failed call; null otherwise.'),
});

const DaemonEventSchema = z.union([
  z.object({
    type: z.literal('server'),
    server: ServerViewSchema,
    previousState: z.string().nullable(),
    at: z.number(),
  }),
  z.object({ type: z.literal('server-removed'), name: z.string(), at: z.number() }),
  z
    .object({ type: z.literal('config'), config: ConfigStatusSchema, at: z.number() })
    .describe('The config file became unusable (the running servers keep serving) or usable again (hot reload).'),
  z
    .object({ type: z.literal('calls'), calls: z.array(CallEntrySchema), at: z.number() })
    .describe('Tool calls answered since the last such event, oldest first; sent every settings.callLogFlushMs while calls happen.'),
]);

export const SnapshotMessageSchema = z
  .object({
    type: z.literal('snapshot'),
    daemon: z.object({
      instanceId: z.string(),
      version: z.string(),
      uptimeMs: z.number(),
      pid: z.number().int(),
    }),
    servers: z.array(ServerViewSchema),
    ledger: z.record(z.string(), ResourceCountsSchema).describe('Resource counts per owner and kind.'),
    machine: z.record(z.string(), z.unknown()).describe('The server statechart definition (xstate machine.toJSON()), for drawing.'),
    config: ConfigStatusSchema.optional().describe(
      'The config file as last read (hot reload): ok, or the error that kept it from applying.',
    ),
  })
  .describe('Sent once, first, on every connection.');

const EventMessageSchema = z
  .object({ type: z.literal('event'), event: DaemonEventSchema })
  .describe('Every change of a server view, and removals.');

const LogMessageSchema = z
  .object({
    type: z.literal('log'),
    server: z.string().nullable().describe('The server the record belongs to; null for daemon records.'),
    record: z.record(z.string(), z.unknown()).describe('One pino JSON record (already redacted): level, time, msg, …'),
  })
  .describe('Only after {type:"subscribe", logs:[…]} naming the server (or "*").');

const ResultMessageSchema = z.union([
  z.object({ type: z.literal('result'), id: RequestIdSchema, ok: z.literal(true), result: z.unknown() }),
  z.object({ type: z.literal('result'), id: RequestIdSchema, ok: z.literal(false), error: ErrorInfoSchema }),
]);

const ErrorMessageSchema = z
  .object({ type: z.literal('error'), code: z.string(), message: z.string() })
  .describe('A message that could not be attributed to a command id (bad JSON, unknown type, …).');

const SubscribedMessageSchema = z.object({ type: z.literal('subscribed'), logs: z.array(z.string()) });
const PongMessageSchema = z.object({ type: z.literal('pong'), id: RequestIdSchema.optional() });

export const DaemonMessageSchema = z.union([
  SnapshotMessageSchema,
  EventMessageSchema,
  LogMessageSchema,
  ResultMessageSchema,
  ErrorMessageSchema,
  SubscribedMessageSchema,
  PongMessageSchema,
]);
export type DaemonMessage = z.infer<typeof DaemonMessageSchema>;
export type SnapshotMessage = z.infer<typeof SnapshotMessageSchema>;

// ---------------------------------------------------------------------------------------------
// Receipt validation (never throws)
// ---------------------------------------------------------------------------------------------

export type Decoded =
  | { kind: 'command'; id: RequestId; command: CommandName; args: unknown }
  | { kind: 'subscribe'; logs: string[] }
  | { kind: 'ping'; id?: RequestId }
  /** A command id could be read: answer with a failed result. */
  | { kind: 'bad-command'; id: RequestId; error: ControlErrorInfo }
  /** Nothing to correlate with: answer with {type:'error'}. */
  | { kind: 'error'; error: ControlErrorInfo };

/** Zod issues as short, value-free text (never echoes the input: it may be a secret). */
function describeIssues(error: z.ZodError, max = 5): string {
  const parts = error.issues.slice(0, max).map((i) => {
    const path = i.path.length ? i.path.map(String).join('.') : '(message)';
    return `${path}: ${i.message}`;
  });
  if (error.issues.length > max) parts.push(`… ${error.issues.length - max} more`);
  return parts.join('; ');
}

function clipText(s: string, n = 64): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** Parses and validates one text frame. */
export function decodeClientMessage(text: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return {
      kind: 'error',
      error: { code: ControlErrorCodes.BAD_JSON, message: `not valid JSON: ${clipText((err as Error).message, 120)}` },
    };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { kind: 'error', error: { code: ControlErrorCodes.BAD_MESSAGE, message: 'expected a JSON object with a "type"' } };
  }
  const type = (value as { type?: unknown }).type;
  switch (type) {
    case 'command': {
      const env = CommandEnvelopeSchema.safeParse(value);
      if (!env.success) {
        const id = RequestIdSchema.safeParse((value as { id?: unknown }).id);
        const error = { code: ControlErrorCodes.BAD_MESSAGE, message: `invalid command message: ${describeIssues(env.error)}` };
        return id.success ? { kind: 'bad-command', id: id.data, error } : { kind: 'error', error };
      }
      const extra = Object.keys(value).filter((k) => !['type', 'id', 'command', 'args'].includes(k));
      const { id, command } = env.data;
      if (extra.length > 0) {
        return {
          kind: 'bad-command',
          id,
          error: {
            code: ControlErrorCodes.BAD_MESSAGE,
            message: `unknown field(s) in command message: ${extra
              .slice(0, 5)
              .map((k) => clipText(k, 32))
              .join(', ')}`,
          },
        };
      }
      if (!isCommandName(command)) {
        return {
          kind: 'bad-command',
          id,
          error: {
            code: ControlErrorCodes.UNKNOWN_COMMAND,
            message: `unknown command "${clipText(command)}"; known: ${COMMAND_NAMES.join(', ')}`,
          },
        };
      }
      const args = CommandArgsSchemas[command].safeParse(env.data.args === undefined ? {} : env.data.args);
      if (!args.success) {
        return {
          kind: 'bad-command',
          id,
          error: { code: ControlErrorCodes.BAD_ARGS, message: `${command}: ${describeIssues(args.error)}` },
        };
      }
      return { kind: 'command', id, command, args: args.data };
    }
    case 'subscribe': {
      const r = SubscribeMessageSchema.safeParse(value);
      if (!r.success)
        return {
          kind: 'error',
          error: { code: ControlErrorCodes.BAD_MESSAGE, message: `invalid subscribe message: ${describeIssues(r.error)}` },
        };
      return { kind: 'subscribe', logs: [...new Set(r.data.logs)] };
    }
    case 'ping': {
      const r = PingMessageSchema.safeParse(value);
      if (!r.success)
        return {
          kind: 'error',
          error: { code: ControlErrorCodes.BAD_MESSAGE, message: `invalid ping message: ${describeIssues(r.error)}` },
        };
      return { kind: 'ping', id: r.data.id };
    }
    default:
      return {
        kind: 'error',
        error: {
          code: ControlErrorCodes.BAD_MESSAGE,
          message:
            typeof type === 'string'
              ? `unknown message type "${clipText(type)}"; expected command, subscribe or ping`
              : 'missing "type" (a string: command, subscribe or ping)',
        },
      };
  }
}

// ---------------------------------------------------------------------------------------------
// JSON Schema export
// ---------------------------------------------------------------------------------------------

function withoutDialect(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/** The JSON Schema document of the protocol (both directions). */
function protocolJsonSchema(): Record<string, unknown> {
  const opts = { unrepresentable: 'any', io: 'input' } as const;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: `mcp-warden control channel, subprotocol ${CONTROL_PROTOCOL}`,
    description:
      'One JSON object per WebSocket text frame. clientMessage: what a client may send; daemonMessage: what the daemon sends. Generated from src/control/protocol.ts; see docs/control-protocol.md.',
    $defs: {
      clientMessage: withoutDialect(z.toJSONSchema(ClientMessageSchema, opts)),
      daemonMessage: withoutDialect(z.toJSONSchema(DaemonMessageSchema, opts)),
    },
    oneOf: [{ $ref: '#/$defs/clientMessage' }, { $ref: '#/$defs/daemonMessage' }],
  };
}

export function protocolJsonSchemaText(): string {
  return JSON.stringify(protocolJsonSchema(), null, 2) + '\n';
}

/** Writes docs/control-protocol.schema.json (see src/control/write-protocol-schema.ts and the protocol test). */
export async function writeProtocolSchema(file: string): Promise<void> {
  await writeFile(file, protocolJsonSchemaText(), 'utf8');
}
