/** Presentation helpers shared by the page's parts: state colours, times, resource lists. */
import type { ServerView } from './types.js';

/** The colour class of a state path: one colour per phase of the server's life. */
export function stateClass(state: string): string {
  const top = state.split('.')[0];
  switch (top) {
    case 'running':
      return 's-running';
    case 'quarantined':
      return 's-quarantined';
    case 'starting':
      if (state === 'starting.backoff') return 's-backoff';
      if (state === 'starting.halted' || state === 'starting.needsAuth') return 's-halted';
      return 's-starting';
    case 'stopping':
      return 's-stopping';
    case 'reaping':
      return 's-reaping';
    case 'stopped':
      return 's-stopped';
    case 'disabled':
      return 's-disabled';
    default:
      return 's-unknown';
  }
}

/** What a state means, for tooltips and the legend. */
export function stateHint(state: string): string {
  switch (state) {
    case 'starting.check':
      return 'about to launch';
    case 'starting.launching':
      return 'process started, MCP initialize and tools/list under way';
    case 'starting.backoff':
      return 'crashed: waiting before the next launch';
    case 'starting.halted':
      return 'halted (crash loop): restart it to try again';
    case 'starting.needsAuth':
      return 'a remote server that needs an OAuth login: use "Log in…" (or mcp-warden auth login)';
    case 'running':
      return 'up; its tools are exposed on /mcp';
    case 'quarantined':
      return 'up, but its tools are hidden until a person approves them';
    case 'stopping':
      return 'stopping: EOF, then SIGTERM, then SIGKILL to its process group';
    case 'stopped':
      return 'stopped: everything it held is verifiably released';
    case 'disabled':
      return 'disabled in the config: not started';
    default:
      return state.startsWith('reaping') ? 'verifying that everything it held is gone' : '';
  }
}

/** A server that still holds resources while on its way down. */
export function isDraining(s: ServerView): boolean {
  return (s.state === 'stopping' || s.state.startsWith('reaping')) && resourceTotal(s.resources) > 0;
}

function resourceTotal(r: Record<string, number> | undefined): number {
  return Object.values(r ?? {}).reduce((a, b) => a + (typeof b === 'number' ? b : 0), 0);
}

/** `process-group 1, mcp-client 1` (or `none`). */
export function resourceText(r: Record<string, number> | undefined): string {
  const parts = Object.entries(r ?? {})
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(', ') : 'none';
}

export function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** Where the server runs: `pid 1234`, `container 3f2a…`, or `-`. */
export function whereText(s: ServerView): string {
  if (typeof s.container === 'string' && s.container) return `container ${s.container.slice(0, 12)}`;
  if (s.pid !== null && s.pid !== undefined) return `pid ${s.pid}`;
  if ((s.resources.container ?? 0) > 0) return 'container';
  return '-';
}

export function oneLine(s: string, max = 140): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}
