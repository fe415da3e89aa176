/**
 * Every timeout, retry limit and budget of the daemon, with its documented default.
 * Config files override any subset under the top-level `settings` object; tests shrink them.
 * docs/config.md lists the same table for users; keep the two in step.
 */
export interface Settings {
  /** How long a server may take from spawn to a completed `initialize` + first `tools/list`. */
  initTimeoutMs: number;
  /** First restart delay after a crash; doubles (restartBackoffFactor) up to restartBackoffMaxMs. */
  restartBackoffInitialMs: number;
  restartBackoffMaxMs: number;
  restartBackoffFactor: number;
  /** OTP-style intensity: more than restartIntensityMax restarts within restartIntensityWindowMs halts the server. */
  restartIntensityMax: number;
  restartIntensityWindowMs: number;
  /** Stop escalation: stdin EOF, wait stopEofGraceMs; SIGTERM to the group, wait stopTermGraceMs; SIGKILL, wait stopKillGraceMs. */
  stopEofGraceMs: number;
  stopTermGraceMs: number;
  stopKillGraceMs: number;
  /** Reaping: forced-removal attempts and the backoff between them, before ownership passes to the daemon reaper. */
  reapMaxAttempts: number;
  reapBackoffInitialMs: number;
  reapBackoffMaxMs: number;
  /** Deadline of one downstream `tools/call` forwarded upstream (reset by progress notifications). */
  toolCallTimeoutMs: number;
  /** Deadline of other upstream requests (tools/list pages). */
  upstreamRequestTimeoutMs: number;
  /** MCP sessions on /mcp idle longer than this are closed. */
  sessionIdleTtlMs: number;
  /**
   * At most this many concurrent MCP sessions on /mcp (and /mcp/<server>). At the cap a new
   * `initialize` evicts the least recently used session with no request in flight.
   */
  maxSessions: number;
  /** Deadline of a server-to-client request (sampling, elicitation, roots) relayed to a client session. */
  clientRequestTimeoutMs: number;
  /** Items per page of resources/list, resources/templates/list and prompts/list on /mcp. */
  mcpListPageSize: number;
  /**
   * Keep-alive interval on /mcp responses still open: an SSE comment on streams (a POST's, the GET
   * stream), a newline before a JSON answer still waiting. 0 = none.
   */
  mcpKeepAliveMs: number;
  /** Whole graceful shutdown budget (SIGINT/SIGTERM): after it, remaining resources are force-released. */
  shutdownBudgetMs: number;
  /** An upstream's stderr is logged at most this many lines per second; the rest is counted and dropped. */
  stderrLinesPerSecond: number;
  /** Longer stderr lines are truncated to this many bytes. */
  stderrMaxLineBytes: number;
  /** The daemon log file rotates at this size, keeping logFileCount old files. */
  logFileMaxBytes: number;
  logFileCount: number;
  /** Largest accepted HTTP request body on /mcp. */
  httpMaxBodyBytes: number;
  /**
   * A connection that has not completed a request head this long after connecting (or a head that
   * takes longer to arrive) is closed. Open SSE streams and requests in flight are not idle.
   */
  httpHeadersTimeoutMs: number;
  /** A whole request (head and body) must have arrived within this; a slower one gets 408 and its connection is closed. */
  httpRequestTimeoutMs: number;
  /** At most this many concurrent TCP connections on the HTTP port (/mcp, /ws, /healthz together); more get 503 and are closed. */
  httpMaxConnections: number;
  /**
   * Each log source (a component, a server) writes at most this many lines per second to the log
   * file and console; the rest is counted and one "N log lines suppressed" line per second says how
   * many. 0 = no limit.
   */
  logLinesPerSecond: number;
  /**
   * Quarantine policy for servers added at run time (control channel, CLI, visualizer): 1 = they
   * start quarantined unless the command marks them trusted; 0 = they are trusted on first use.
   */
  quarantineNewServers: number;
  /**
   * One daemon per data dir (`<dataDir>/daemon.lock`): the holder refreshes the lock every
   * lockUpdateMs; a lock not refreshed for lockStaleMs belongs to a dead holder and is taken over, so
   * a successor of a SIGKILLed daemon starts within about lockStaleMs. proper-lockfile enforces
   * lockStaleMs >= 2000 and 1000 <= lockUpdateMs <= lockStaleMs / 2.
   */
  lockStaleMs: number;
  lockUpdateMs: number;
  /** At most this many concurrent WebSocket connections on the control channel (/ws); more get HTTP 503. */
  controlMaxConnections: number;
  /** Largest accepted control-channel message (a larger one closes that connection with code 1009). */
  controlMaxPayloadBytes: number;
  /** The control channel pings every connection this often; one that has not answered the previous ping is dropped. */
  controlHeartbeatIntervalMs: number;
  /** A control-channel consumer with more unsent output queued than this is dropped instead of buffered. */
  controlMaxBufferedBytes: number;
  /** Deadline of one Docker Engine API call (ping, create, attach, start, inspect, kill, remove, list). */
  dockerCallTimeoutMs: number;
  /** `docker stop` grace in whole seconds: the engine sends SIGTERM, waits this long, then SIGKILL. */
  dockerStopGraceSeconds: number;
  /**
   * Browser origins (`https://app.example`) allowed besides the built-in ones (/mcp: any loopback
   * origin; /ws, /healthz, the visualizer: the daemon's own origin only), e.g. a web client served from
   * another host. Requests without an Origin header (CLIs, SDK clients) are not affected.
   */
  allowedOrigins: readonly string[];
  /** How processes are read: /proc, or ps/pgrep/lsof (adapters/process/process-table.ts); `auto` = /proc where it exists. */
  processTable: 'auto' | 'proc' | 'portable';
  /** Deadline of one ps, pgrep or lsof run of the portable process table. */
  processTableTimeoutMs: number;
  /**
   * Hot reload: after the config file's directory reports a change, wait this long without a further
   * change before re-reading it (editors write in several steps: temp file, rename, chmod).
   */
  configReloadDebounceMs: number;
  /**
   * What a changed or new tool of an approved server withholds (docs/quarantine.md): `server` = the
   * whole server goes back to quarantine; `tool` = only the changed tools are withheld, the
   * unchanged ones keep serving.
   */
  quarantineScope: 'server' | 'tool';
  /**
   * Largest HTTP response to one POST on /mcp (one answer, or a batch's answers together). An answer
   * that would take the response past it is replaced by a JSON-RPC error E_RESPONSE_TOO_LARGE.
   */
  mcpMaxResponseBytes: number;
  /**
   * Per /mcp session: serialized answer bytes written but not yet taken by the client's socket. Beyond
   * it further answers of the session wait until the client reads (back-pressure, not a refusal and not
   * a running total).
   */
  mcpMaxBufferedBytes: number;
  /** A POST /mcp body nested deeper than this (objects and arrays) is refused with E_NESTING_TOO_DEEP. */
  mcpMaxJsonDepth: number;
  /** Largest message an upstream may write on stdout; a larger one fails its connection (E_UPSTREAM_MESSAGE_TOO_LARGE). */
  upstreamMaxMessageBytes: number;
  /**
   * More than this many lines on an upstream's stdout that are not JSON-RPC within
   * upstreamGarbageWindowMs fail its connection as a protocol failure (E_UPSTREAM_PROTOCOL); 0 = never.
   */
  upstreamGarbageLinesMax: number;
  upstreamGarbageWindowMs: number;
  /** `GET /metrics` (Prometheus text) and the per-call counters behind it (src/adapters/observability/). */
  metrics: 'on' | 'off';
  /** The tool-call log (`<dataDir>/calls.jsonl`, `mcp-warden calls`, the visualizer's calls panel). */
  callLog: 'on' | 'off';
  /** What of a call besides its outline the call log keeps: nothing, its arguments, or arguments and result (redacted). */
  callLogPayloads: 'none' | 'arguments' | 'all';
  /** A logged argument or result longer than this (as JSON) is cut to this many bytes. */
  callLogPayloadMaxBytes: number;
  /** Calls are buffered in memory and written (and sent to UIs) this often. */
  callLogFlushMs: number;
  /** The call log file rotates at this size, keeping callLogFileCount old files. */
  callLogMaxBytes: number;
  callLogFileCount: number;
  /** The most recent calls kept in memory for `calls.list` and UIs. */
  callLogMemoryEntries: number;
  /** Calls waiting for the next flush beyond this are dropped (and counted) instead of buffered. */
  callLogMaxPending: number;
  /**
   * What `tools/list` on /mcp offers: `all` = every federated tool; `search` = only `retrieve_tools`
   * and `call_tool` (plus pinned tools), so a model finds tools by search instead of reading them all
   * (docs/mcp-endpoint.md#tool-search). A client may pick per session with `/mcp?toolMode=…`.
   */
  toolMode: 'all' | 'search';
  /** retrieve_tools: results when the call gives no `limit`, and the largest `limit` accepted. */
  toolSearchDefaultLimit: number;
  toolSearchMaxLimit: number;
  /** A running remote (url) server is pinged this often; a failed ping counts as losing it. 0 = never. */
  remotePingIntervalMs: number;
  /** Deadline of one TCP (and TLS) connect to a remote server. */
  remoteConnectTimeoutMs: number;
  /** A remote server's `Retry-After` is honoured as the next restart delay, up to this. */
  remoteRetryAfterMaxMs: number;
  /** How long `mcp-warden auth login` (and the daemon's pending login) waits for the OAuth redirect. */
  oauthLoginTimeoutMs: number;
}

export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  initTimeoutMs: 30_000,
  restartBackoffInitialMs: 1_000,
  restartBackoffMaxMs: 60_000,
  restartBackoffFactor: 2,
  restartIntensityMax: 5,
  restartIntensityWindowMs: 60_000,
  stopEofGraceMs: 1_000,
  stopTermGraceMs: 2_000,
  stopKillGraceMs: 2_000,
  reapMaxAttempts: 5,
  reapBackoffInitialMs: 500,
  reapBackoffMaxMs: 10_000,
  toolCallTimeoutMs: 60_000,
  upstreamRequestTimeoutMs: 30_000,
  sessionIdleTtlMs: 30 * 60_000,
  maxSessions: 64,
  clientRequestTimeoutMs: 120_000,
  mcpListPageSize: 100,
  mcpKeepAliveMs: 15_000,
  shutdownBudgetMs: 15_000,
  stderrLinesPerSecond: 100,
  stderrMaxLineBytes: 4_096,
  logFileMaxBytes: 10 * 1024 * 1024,
  logFileCount: 3,
  httpMaxBodyBytes: 4 * 1024 * 1024,
  httpHeadersTimeoutMs: 10_000,
  httpRequestTimeoutMs: 30_000,
  httpMaxConnections: 256,
  logLinesPerSecond: 50,
  quarantineNewServers: 1,
  lockStaleMs: 3_000,
  lockUpdateMs: 1_000,
  controlMaxConnections: 32,
  controlMaxPayloadBytes: 64 * 1024,
  controlHeartbeatIntervalMs: 30_000,
  controlMaxBufferedBytes: 1024 * 1024,
  dockerCallTimeoutMs: 10_000,
  dockerStopGraceSeconds: 2,
  allowedOrigins: [],
  processTable: 'auto',
  processTableTimeoutMs: 5_000,
  configReloadDebounceMs: 200,
  quarantineScope: 'server',
  mcpMaxResponseBytes: 32 * 1024 * 1024,
  mcpMaxBufferedBytes: 64 * 1024 * 1024,
  mcpMaxJsonDepth: 100,
  upstreamMaxMessageBytes: 32 * 1024 * 1024,
  upstreamGarbageLinesMax: 1_000,
  upstreamGarbageWindowMs: 10_000,
  metrics: 'on',
  callLog: 'on',
  callLogPayloads: 'none',
  callLogPayloadMaxBytes: 4_096,
  callLogFlushMs: 1_000,
  callLogMaxBytes: 10 * 1024 * 1024,
  callLogFileCount: 3,
  callLogMemoryEntries: 1_000,
  callLogMaxPending: 50_000,
  toolMode: 'all',
  toolSearchDefaultLimit: 5,
  toolSearchMaxLimit: 50,
  remotePingIntervalMs: 15_000,
  remoteConnectTimeoutMs: 10_000,
  remoteRetryAfterMaxMs: 300_000,
  oauthLoginTimeoutMs: 300_000,
});

/** Exponential backoff: initial * factor^(attempt-1), capped. attempt counts from 1. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, factor = 2): number {
  const n = Math.max(0, attempt - 1);
  return Math.min(maxMs, Math.round(initialMs * Math.pow(factor, n)));
}
