/**
 * The live upstream sessions (process group + MCP client) by server name. Written only by the
 * launch actor and emptied by the release of the session's ledger entry, so a session is reachable
 * here exactly while its owning server actor holds it.
 */
import type { Upstream } from '../adapters/upstream-handle.js';
import type { UpstreamConnection } from '../adapters/mcp/upstream-client.js';

export interface UpstreamSession {
  name: string;
  handle: Upstream;
  connection: UpstreamConnection;
}

export class UpstreamSessions {
  private readonly byName = new Map<string, UpstreamSession>();

  set(session: UpstreamSession): void {
    this.byName.set(session.name, session);
  }

  get(name: string): UpstreamSession | undefined {
    return this.byName.get(name);
  }

  /** Remove only if it is still this session (a later generation may have replaced it). */
  delete(session: UpstreamSession): void {
    if (this.byName.get(session.name) === session) this.byName.delete(session.name);
  }

  size(): number {
    return this.byName.size;
  }
}
