/**
 * The one catalogue of mcp-warden's stable error codes. Every code is defined here once, with what it
 * means, where it shows up and, where it crosses a wire, its HTTP status and its JSON-RPC `error.code`.
 * The HTTP router (src/adapters/http/http-server.ts), the MCP front (src/adapters/mcp/mcp-front.ts) and
 * the control channel read status and JSON-RPC code from here instead of keeping their own tables.
 * docs/error-codes.md lists every code (test/unit/error-catalogue.test.ts keeps the two in step).
 *
 * Never change the meaning of an existing code; add a new one instead.
 * Pure module, no imports.
 */

/** Where a code is reported (the "where" column of docs/error-codes.md). */
type ErrorSurface = 'start' | 'commands' | 'server' | 'log' | 'serve' | '/mcp' | 'HTTP' | 'control' | 'any';

export interface ErrorSpec {
  readonly code: `E_${string}`;
  /** One line: what the code means. Also the default message where no better one is at hand. */
  readonly meaning: string;
  readonly where: readonly ErrorSurface[];
  /** The HTTP status of a response carrying this code (absent: never sent as an HTTP refusal). */
  readonly http?: number;
  /** The JSON-RPC `error.code` on /mcp (absent: -32603 InternalError when it ever reaches a client). */
  readonly rpc?: number;
}

/** JSON-RPC codes we use (the standard ones, and the implementation-defined -32000…-32099 range). */
export const RpcCodes = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL: -32603,
  /** Generic server error: HTTP-level refusals (and the SDK's own transport refusals). */
  SERVER_ERROR: -32000,
  /** The SDK's RequestTimeout; also its "Session not found" on Streamable HTTP. */
  REQUEST_TIMEOUT: -32001,
  SERVER_UNAVAILABLE: -32003,
  QUARANTINED: -32004,
  SHUTTING_DOWN: -32005,
  /** MCP's "resource not found" (specification, resources/read). */
  RESOURCE_NOT_FOUND: -32002,
} as const;

export const ErrorCatalogue = {
  // ---- configuration and start-up -------------------------------------------------------------
  CONFIG_INVALID: {
    code: 'E_CONFIG_INVALID',
    where: ['start', 'commands'],
    meaning: 'the config file (or an entry) is malformed; the message lists every problem with its JSON path',
  },
  CONFIG_UNREADABLE: { code: 'E_CONFIG_UNREADABLE', where: ['start'], meaning: 'the config file cannot be read or written' },
  LISTEN_FAILED: { code: 'E_LISTEN_FAILED', where: ['start'], meaning: 'the listen address cannot be bound' },
  NON_LOOPBACK_REFUSED: {
    code: 'E_NON_LOOPBACK_REFUSED',
    where: ['start'],
    meaning: 'a non-loopback --listen without --allow-remote',
  },
  DATA_DIR_UNWRITABLE: { code: 'E_DATA_DIR_UNWRITABLE', where: ['start'], meaning: 'the data dir cannot be created or written' },
  ALREADY_RUNNING: { code: 'E_ALREADY_RUNNING', where: ['start'], meaning: "another daemon holds this data dir's lock" },
  LOCK_COMPROMISED: {
    code: 'E_LOCK_COMPROMISED',
    where: ['serve'],
    meaning: "the daemon's data-dir lock was removed or taken over while it ran",
  },
  APPROVALS_CORRUPT: {
    code: 'E_APPROVALS_CORRUPT',
    where: ['start'],
    meaning: 'approvals.json is corrupt or unreadable: the daemon refuses to start rather than trust servers on first use again',
  },
  DATA_FILE_SYMLINK: {
    code: 'E_DATA_FILE_SYMLINK',
    where: ['start', 'log'],
    meaning: 'a data-dir file (daemon.log, token, daemon.json, approvals.json, pending-reap.json) is a symbolic link; it is not followed',
  },

  // ---- upstream servers -----------------------------------------------------------------------
  REMOTE_UNSUPPORTED: { code: 'E_REMOTE_UNSUPPORTED', where: ['server'], meaning: 'remote (url) servers are not supported yet' },
  REMOTE_UNREACHABLE: {
    code: 'E_REMOTE_UNREACHABLE',
    where: ['server'],
    meaning: 'a remote server cannot be reached (DNS, connection refused or reset, connect timeout)',
  },
  REMOTE_TLS: { code: 'E_REMOTE_TLS', where: ['server'], meaning: "a remote server's TLS handshake or certificate failed" },
  REMOTE_NOT_MCP: {
    code: 'E_REMOTE_NOT_MCP',
    where: ['server'],
    meaning: 'a remote server answered something that is not MCP (an HTML page, an unexpected content type)',
  },
  REMOTE_HTTP_STATUS: {
    code: 'E_REMOTE_HTTP_STATUS',
    where: ['server'],
    meaning: 'a remote server answered with an HTTP error status; a Retry-After is honoured as the next restart delay',
  },
  REMOTE_REDIRECT: {
    code: 'E_REMOTE_REDIRECT',
    where: ['server'],
    meaning: 'a remote server redirected to another origin; the redirect is not followed',
  },
  REMOTE_NEEDS_AUTH: {
    code: 'E_REMOTE_NEEDS_AUTH',
    where: ['server'],
    meaning: 'a remote server requires an OAuth login (or its tokens were refused and could not be refreshed); it waits in needsAuth',
  },
  NOT_REMOTE: { code: 'E_NOT_REMOTE', where: ['commands'], meaning: 'auth login/logout: the server is not a remote (url) server' },
  AUTH_LOGIN_FAILED: {
    code: 'E_AUTH_LOGIN_FAILED',
    where: ['commands'],
    meaning: 'auth login: discovery, registration, the authorization or the token exchange failed',
  },
  AUTH_LOGIN_TIMEOUT: {
    code: 'E_AUTH_LOGIN_TIMEOUT',
    where: ['commands'],
    meaning: 'auth login: the authorization redirect did not arrive within oauthLoginTimeoutMs',
  },
  AUTH_CALLBACK_INVALID: {
    code: 'E_AUTH_CALLBACK_INVALID',
    where: ['HTTP'],
    http: 400,
    meaning: 'an OAuth redirect to /oauth/callback whose state matches no pending login',
  },
  SPAWN_FAILED: { code: 'E_SPAWN_FAILED', where: ['server'], meaning: 'the command could not be started' },
  SECRET_UNRESOLVED: {
    code: 'E_SECRET_UNRESOLVED',
    where: ['server'],
    meaning: 'a ${env:NAME} or ${file:PATH} reference of the entry cannot be resolved; that server is not started',
  },
  INIT_TIMEOUT: { code: 'E_INIT_TIMEOUT', where: ['server'], meaning: 'no initialize answer and tool list within initTimeoutMs' },
  INIT_FAILED: { code: 'E_INIT_FAILED', where: ['server'], meaning: 'initialize or the first tools/list failed' },
  UPSTREAM_EXITED: { code: 'E_UPSTREAM_EXITED', where: ['server'], meaning: 'the upstream exited or closed its stdout while running' },
  CRASH_LOOP: { code: 'E_CRASH_LOOP', where: ['server'], meaning: 'too many restarts within the restart window' },
  STOP_FAILED: { code: 'E_STOP_FAILED', where: ['server'], meaning: 'the polite stop did not release everything' },
  REAP_FAILED: { code: 'E_REAP_FAILED', where: ['server'], meaning: 'a forced release attempt failed' },
  PROCESS_TABLE_UNAVAILABLE: {
    code: 'E_PROCESS_TABLE_UNAVAILABLE',
    where: ['start', 'server', 'log'],
    meaning: 'the process table cannot be read (the portable one: ps, pgrep or lsof missing or too slow)',
  },
  TOOLS_CHANGED: { code: 'E_TOOLS_CHANGED', where: ['server'], meaning: 'tools differ from what was approved; back in quarantine' },
  APPROVAL_MISSING: {
    code: 'E_APPROVAL_MISSING',
    where: ['server'],
    meaning:
      'the server was approved before but its approval record is gone (removed from approvals.json, or the file deleted); quarantined',
  },
  TOOLS_MISMATCH: {
    code: 'E_TOOLS_MISMATCH',
    where: ['commands'],
    meaning: 'server.approve: the tools are not the ones whose fingerprint was given (they changed since shown); nothing approved',
  },
  DOCKER_UNAVAILABLE: { code: 'E_DOCKER_UNAVAILABLE', where: ['server'], meaning: 'no Docker engine answers' },
  DOCKER_IMAGE_MISSING: { code: 'E_DOCKER_IMAGE_MISSING', where: ['server'], meaning: "the entry's image is not on the engine" },
  DOCKER_FAILED: { code: 'E_DOCKER_FAILED', where: ['server'], meaning: 'a Docker Engine API call failed or missed its deadline' },
  CONTAINER_EXITED: { code: 'E_CONTAINER_EXITED', where: ['server'], meaning: "the server's container exited" },

  // ---- tools/call on /mcp ---------------------------------------------------------------------
  UNKNOWN_TOOL: { code: 'E_UNKNOWN_TOOL', where: ['/mcp'], meaning: 'no such federated tool', rpc: RpcCodes.INVALID_PARAMS },
  SERVER_UNAVAILABLE: {
    code: 'E_SERVER_UNAVAILABLE',
    where: ['/mcp'],
    meaning: "the tool's server exists but is not running",
    rpc: RpcCodes.SERVER_UNAVAILABLE,
  },
  DAEMON_UNREACHABLE: {
    code: 'E_DAEMON_UNREACHABLE',
    where: ['/mcp'],
    meaning: "`mcp-warden stdio` could not hand a request to the daemon's /mcp endpoint",
    rpc: RpcCodes.SERVER_UNAVAILABLE,
  },
  QUARANTINED: {
    code: 'E_QUARANTINED',
    where: ['/mcp'],
    meaning: "the tool's server is quarantined until a person approves it",
    rpc: RpcCodes.QUARANTINED,
  },
  /** `rpc` is the fallback: an upstream JSON-RPC error keeps the upstream's own code. */
  UPSTREAM_ERROR: {
    code: 'E_UPSTREAM_ERROR',
    where: ['/mcp'],
    meaning: 'the upstream answered with a JSON-RPC error',
    rpc: RpcCodes.INTERNAL,
  },
  UPSTREAM_TIMEOUT: {
    code: 'E_UPSTREAM_TIMEOUT',
    where: ['/mcp'],
    meaning: 'the upstream did not answer within toolCallTimeoutMs',
    rpc: RpcCodes.REQUEST_TIMEOUT,
  },

  UNKNOWN_RESOURCE: {
    code: 'E_UNKNOWN_RESOURCE',
    where: ['/mcp'],
    meaning: 'a resource URI no running server owns (not of the form mcp-warden://<server>/<uri> on /mcp)',
    rpc: RpcCodes.RESOURCE_NOT_FOUND,
  },
  UNKNOWN_PROMPT: {
    code: 'E_UNKNOWN_PROMPT',
    where: ['/mcp'],
    meaning: 'no such prompt (or completion reference)',
    rpc: RpcCodes.INVALID_PARAMS,
  },
  TOOL_FILTERED: {
    code: 'E_TOOL_FILTERED',
    where: ['/mcp'],
    meaning: 'the tool exists but its server\'s "tools" filter in the config does not expose it',
    rpc: RpcCodes.INVALID_PARAMS,
  },
  BAD_TOOL_MODE: {
    code: 'E_BAD_TOOL_MODE',
    where: ['/mcp'],
    meaning: 'a toolMode query parameter other than "all" or "search" (or "search" on /mcp/<server>)',
    http: 400,
    rpc: RpcCodes.SERVER_ERROR,
  },
  BAD_CURSOR: { code: 'E_BAD_CURSOR', where: ['/mcp'], meaning: 'a list cursor mcp-warden did not issue', rpc: RpcCodes.INVALID_PARAMS },
  NO_CLIENT_REQUEST: {
    code: 'E_NO_CLIENT_REQUEST',
    where: ['/mcp'],
    meaning: 'sent to an upstream: its sampling/elicitation/roots request came while no client request to it was in flight',
    rpc: RpcCodes.METHOD_NOT_FOUND,
  },
  CLIENT_CAPABILITY_MISSING: {
    code: 'E_CLIENT_CAPABILITY_MISSING',
    where: ['/mcp'],
    meaning: 'sent to an upstream: the client its request was routed to did not declare sampling, elicitation or roots',
    rpc: RpcCodes.METHOD_NOT_FOUND,
  },

  // ---- HTTP refusals (/mcp and the router) -----------------------------------------------------
  SHUTTING_DOWN: {
    code: 'E_SHUTTING_DOWN',
    where: ['/mcp', 'control'],
    meaning: 'the daemon is shutting down',
    http: 503,
    rpc: RpcCodes.SHUTTING_DOWN,
  },
  TOO_MANY_SESSIONS: {
    code: 'E_TOO_MANY_SESSIONS',
    where: ['/mcp'],
    meaning: 'maxSessions sessions are open',
    http: 503,
    rpc: RpcCodes.SERVER_ERROR,
  },
  SESSION_REQUIRED: {
    code: 'E_SESSION_REQUIRED',
    where: ['/mcp'],
    meaning: 'a request other than initialize without mcp-session-id (or with it twice)',
    http: 400,
    rpc: RpcCodes.SERVER_ERROR,
  },
  SESSION_NOT_FOUND: {
    code: 'E_SESSION_NOT_FOUND',
    where: ['/mcp'],
    meaning: 'unknown or expired mcp-session-id; start a new session with initialize',
    http: 404,
    rpc: RpcCodes.REQUEST_TIMEOUT, // the SDK's own code for it
  },
  FORBIDDEN_HOST: {
    code: 'E_FORBIDDEN_HOST',
    where: ['HTTP'],
    meaning: 'Host header not allowed (DNS-rebinding protection)',
    http: 403,
    rpc: RpcCodes.SERVER_ERROR,
  },
  FORBIDDEN_ORIGIN: { code: 'E_FORBIDDEN_ORIGIN', where: ['HTTP'], meaning: 'foreign Origin', http: 403, rpc: RpcCodes.SERVER_ERROR },
  SUPERVISED_PEER: {
    code: 'E_SUPERVISED_PEER',
    where: ['HTTP'],
    meaning: 'the connection comes from a process the daemon supervises; upstreams may not drive the daemon',
    http: 403,
    rpc: RpcCodes.SERVER_ERROR,
  },
  UNAUTHORIZED: {
    code: 'E_UNAUTHORIZED',
    where: ['HTTP'],
    meaning: 'missing or wrong bearer token',
    http: 401,
    rpc: RpcCodes.SERVER_ERROR,
  },
  NOT_FOUND: { code: 'E_NOT_FOUND', where: ['HTTP'], meaning: 'no such path', http: 404 },
  METHOD_NOT_ALLOWED: {
    code: 'E_METHOD_NOT_ALLOWED',
    where: ['HTTP'],
    meaning: 'the path exists but not for this method',
    http: 405,
    rpc: RpcCodes.SERVER_ERROR,
  },
  BODY_TOO_LARGE: {
    code: 'E_BODY_TOO_LARGE',
    where: ['HTTP'],
    meaning: 'request body above httpMaxBodyBytes',
    http: 413,
    rpc: RpcCodes.INVALID_REQUEST,
  },

  // ---- control channel (docs/control-protocol.md) ---------------------------------------------
  BAD_JSON: {
    code: 'E_BAD_JSON',
    where: ['control', '/mcp'],
    meaning: 'a control frame or a POST /mcp body is not valid JSON',
    http: 400,
    rpc: RpcCodes.PARSE_ERROR,
  },
  BAD_MESSAGE: { code: 'E_BAD_MESSAGE', where: ['control'], meaning: 'valid JSON, but not a message this protocol knows' },
  UNKNOWN_COMMAND: { code: 'E_UNKNOWN_COMMAND', where: ['control'], meaning: 'a command the daemon does not have' },
  BAD_ARGS: { code: 'E_BAD_ARGS', where: ['control'], meaning: "the command's args do not match its schema" },
  SERVER_EXISTS: { code: 'E_SERVER_EXISTS', where: ['control'], meaning: 'server.add with a name that is already configured' },
  UNKNOWN_SERVER: { code: 'E_UNKNOWN_SERVER', where: ['control'], meaning: 'a command names a server that is not configured' },
  SERVER_DISABLED: { code: 'E_SERVER_DISABLED', where: ['control'], meaning: 'restart of a disabled server' },
  NOT_AVAILABLE: { code: 'E_NOT_AVAILABLE', where: ['control'], meaning: 'this daemon cannot perform the command' },
  BUSY: { code: 'E_BUSY', where: ['control'], meaning: 'too many commands in flight on this connection' },
  TOO_MANY_CONNECTIONS: {
    code: 'E_TOO_MANY_CONNECTIONS',
    where: ['control'],
    meaning: 'upgrade refused: controlMaxConnections is reached',
    http: 503,
  },
  BAD_SUBPROTOCOL: {
    code: 'E_BAD_SUBPROTOCOL',
    where: ['control'],
    meaning: 'upgrade refused: subprotocols offered, but not mcp-warden.v1',
    http: 400,
  },

  // ---- response and message bounds (docs/mcp-endpoint.md#response-bounds) ------------
  RESPONSE_TOO_LARGE: {
    code: 'E_RESPONSE_TOO_LARGE',
    where: ['/mcp'],
    meaning: 'the answer would take the HTTP response past mcpMaxResponseBytes; it is replaced by this error',
    rpc: RpcCodes.INTERNAL,
  },
  SERIALIZATION_FAILED: {
    code: 'E_SERIALIZATION_FAILED',
    where: ['/mcp'],
    meaning: 'the answer could not be serialized to JSON (too large or too deeply nested); it is replaced by this error',
    rpc: RpcCodes.INTERNAL,
  },
  BATCH_REFUSED: {
    code: 'E_BATCH_REFUSED',
    where: ['/mcp'],
    meaning: 'a JSON-RPC batch on a session whose protocol version (2025-06-18 or later) has no batching, or a batch carrying initialize',
    http: 400,
    rpc: RpcCodes.INVALID_REQUEST,
  },
  NESTING_TOO_DEEP: {
    code: 'E_NESTING_TOO_DEEP',
    where: ['/mcp'],
    meaning: 'a POST /mcp body nested deeper than mcpMaxJsonDepth',
    http: 400,
    rpc: RpcCodes.INVALID_REQUEST,
  },
  UPSTREAM_MESSAGE_TOO_LARGE: {
    code: 'E_UPSTREAM_MESSAGE_TOO_LARGE',
    where: ['server', '/mcp'],
    meaning:
      'the upstream wrote a message larger than upstreamMaxMessageBytes: that answer fails (or, for another kind of message, the connection)',
    rpc: RpcCodes.INTERNAL,
  },
  UPSTREAM_PROTOCOL: {
    code: 'E_UPSTREAM_PROTOCOL',
    where: ['server', '/mcp'],
    meaning: 'the upstream wrote more than upstreamGarbageLinesMax non-JSON-RPC lines on stdout within upstreamGarbageWindowMs',
    rpc: RpcCodes.INTERNAL,
  },

  INTERNAL: {
    code: 'E_INTERNAL',
    where: ['any'],
    meaning: 'a bug; please report it with the log',
    http: 500,
    rpc: RpcCodes.INTERNAL,
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorKey = keyof typeof ErrorCatalogue;
export type ErrorCode = (typeof ErrorCatalogue)[ErrorKey]['code'];

/** key → code, e.g. ErrorCodes.UNKNOWN_TOOL === 'E_UNKNOWN_TOOL'. */
export const ErrorCodes = Object.freeze(Object.fromEntries(Object.entries(ErrorCatalogue).map(([k, spec]) => [k, spec.code]))) as {
  readonly [K in ErrorKey]: (typeof ErrorCatalogue)[K]['code'];
};

const byCode: ReadonlyMap<string, ErrorSpec> = new Map(Object.values(ErrorCatalogue).map((s) => [s.code, s]));

/** Every catalogue entry, in catalogue order. */
export function allErrorSpecs(): readonly ErrorSpec[] {
  return Object.values(ErrorCatalogue);
}

/** The HTTP status for a response carrying `code`; 500 for a code never meant for HTTP. */
export function httpStatusOf(code: string): number {
  return byCode.get(code)?.http ?? 500;
}

/** The JSON-RPC `error.code` for `code` on /mcp; -32603 InternalError when the catalogue has none. */
export function rpcCodeOf(code: string): number {
  return byCode.get(code)?.rpc ?? RpcCodes.INTERNAL;
}

/** A subset of ErrorCodes by key, for modules that expose only their own codes (e.g. ControlErrorCodes). */
export function pickCodes<K extends ErrorKey>(keys: readonly K[]): { readonly [P in K]: (typeof ErrorCatalogue)[P]['code'] } {
  return Object.freeze(Object.fromEntries(keys.map((k) => [k, ErrorCatalogue[k].code]))) as {
    readonly [P in K]: (typeof ErrorCatalogue)[P]['code'];
  };
}
