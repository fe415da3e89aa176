/**
 * Watch effect of `running` and `quarantined`: turns the upstream's exit, its closed transport and
 * `tools/list_changed`, `prompts/list_changed`, `resources/list_changed` into machine events. A list
 * change refetches that list and sends all three lists (the others as last checked) with their
 * integrity check, so the check always sees everything the server offers. The session comes with the
 * input (the server actor's context). Its cleanup removes every listener it added and aborts a
 * refresh in flight, so leaving the state leaves nothing subscribed.
 */
import { fromCallback } from 'xstate';
import type { Logger } from 'pino';
import type { OfferedLists, ServerEvent, ToolCheck, UpstreamToolInfo, WatchInput } from '../machines/server-machine.js';
import { fetchOfferedList, OFFERED_LIST_CHANGED, type OfferedListKind } from '../adapters/mcp/upstream-lists.js';

export function createWatchUpstream(deps: {
  logger: Logger;
  checkTools: (name: string, tools: UpstreamToolInfo[], lists?: OfferedLists) => ToolCheck;
  /** The request timeout of a list refresh (upstreamRequestTimeoutMs). */
  requestTimeoutMs?: () => number;
}) {
  return fromCallback<ServerEvent, WatchInput>(({ input, sendBack }) => {
    const session = input.session;
    if (!session) {
      // Nothing to watch means nothing to call either: recover through stopping like a crash.
      sendBack({ type: 'UPSTREAM_EXITED', code: null, signal: null });
      return () => undefined;
    }
    let exited = false;
    const exit = (code: number | null, signal: string | null) => {
      if (exited) return;
      exited = true;
      // Why the upstream was lost: a connection failed by its transport (oversized message, garbage), or a
      // remote upstream's own reason (unreachable, credentials refused: needsAuth).
      const failure = session.connection.failure?.();
      const error = failure ? { code: failure.code, message: failure.message } : session.handle.exitError?.();
      sendBack(error ? { type: 'UPSTREAM_EXITED', code, signal, error } : { type: 'UPSTREAM_EXITED', code, signal });
    };
    // Made on the first refresh: most watches end without one, and an abort costs a DOMException.
    let refresh: AbortController | undefined;
    let ended = false;
    const signal = () => (refresh ??= new AbortController()).signal;
    // The lists as last checked (the context's); each refresh replaces its own.
    let tools: UpstreamToolInfo[] | undefined = input.tools;
    const lists: OfferedLists = { prompts: input.prompts, resourceTemplates: input.resourceTemplates };
    const send = () => {
      if (ended || !tools) return;
      sendBack({ type: 'TOOLS_UPDATED', tools, ...lists, ...deps.checkTools(input.name, tools, lists) });
    };
    const failed = (what: string) => (err: unknown) => {
      if (!ended) deps.logger.warn({ server: input.name, err }, `${what} refresh failed`);
    };
    const refreshTools = () =>
      session.connection.listTools(signal()).then((t) => {
        tools = t;
      });
    const offExit = session.handle.onExit((info) => exit(info.code, info.signal));
    const offClose = session.connection.onClose(() => exit(null, null));
    const offTools = session.connection.onToolsChanged(() => {
      refreshTools().then(send).catch(failed('tool list'));
    });
    const refreshList = (kind: OfferedListKind) => {
      const fetched = fetchOfferedList(session.connection, kind, {
        timeoutMs: deps.requestTimeoutMs?.() ?? 30_000,
        signal: signal(),
        logger: deps.logger.child({ server: input.name }),
      });
      // The tools are sent with the lists: fetch them too unless a refresh already did.
      Promise.all([fetched, tools ? undefined : refreshTools()])
        .then(([items]) => {
          // A failed fetch leaves the list as last checked (what the endpoint serves meanwhile).
          if (items) lists[kind] = items;
          send();
        })
        .catch(failed(kind));
    };
    const offLists = session.connection.onNotification((method) => {
      const kind = Object.hasOwn(OFFERED_LIST_CHANGED, method) ? OFFERED_LIST_CHANGED[method] : undefined;
      if (kind) refreshList(kind);
    });
    return () => {
      ended = true;
      refresh?.abort();
      offExit();
      offClose();
      offTools();
      offLists();
    };
  });
}
