/**
 * Watch effect of `running` and `quarantined`: turns the upstream's exit, its closed transport and
 * `tools/list_changed` into machine events. The session comes with the input (the server actor's
 * context). Its cleanup removes every listener it added and aborts a tool-list refresh in flight,
 * so leaving the state leaves nothing subscribed.
 */
import { fromCallback } from 'xstate';
import type { Logger } from 'pino';
import type { ServerEvent, ToolCheck, UpstreamToolInfo, WatchInput } from '../machines/server-machine.js';

export function createWatchUpstream(deps: { logger: Logger; checkTools: (name: string, tools: UpstreamToolInfo[]) => ToolCheck }) {
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
    const refresh = new AbortController();
    const offExit = session.handle.onExit((info) => exit(info.code, info.signal));
    const offClose = session.connection.onClose(() => exit(null, null));
    const offTools = session.connection.onToolsChanged(() => {
      session.connection
        .listTools(refresh.signal)
        .then((tools) => {
          if (!refresh.signal.aborted) {
            sendBack({ type: 'TOOLS_UPDATED', tools, ...deps.checkTools(input.name, tools) });
          }
        })
        .catch((err: unknown) => {
          if (!refresh.signal.aborted) deps.logger.warn({ server: input.name, err }, 'tool list refresh failed');
        });
    });
    return () => {
      refresh.abort();
      offExit();
      offClose();
      offTools();
    };
  });
}
