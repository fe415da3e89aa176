/**
 * The calls panel: the tool calls the daemon answered (seeded with `calls.list` on connect, then live
 * from `calls` events), filterable by text and outcome, and per server the call count, error rate and
 * latency (p50, p95) over the calls the page holds. Rendering is coalesced to one frame per burst.
 */
import { h, replaceChildren } from './dom.js';
import type { CallEntry } from './types.js';

/** Calls the page keeps (the newest); the statistics are over these. */
const MAX_CALLS = 1000;
/** Rows drawn at most (the newest matching ones). */
const MAX_ROWS = 200;
const OUTCOMES = ['ok', 'tool_error', 'error', 'timeout', 'cancelled'] as const;

export interface CallsElements {
  list: HTMLElement;
  stats: HTMLElement;
  filter: HTMLInputElement;
  outcome: HTMLSelectElement;
  count: HTMLElement;
}

function ms(n: number): string {
  if (n >= 10_000) return `${(n / 1000).toFixed(1)} s`;
  if (n >= 1000) return `${(n / 1000).toFixed(2)} s`;
  if (n >= 10) return `${Math.round(n)} ms`;
  return `${n.toFixed(1)} ms`;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

function timeOf(iso: string): string {
  const d = new Date(iso);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export interface ServerCallStats {
  server: string;
  calls: number;
  errors: number;
  p50: number;
  p95: number;
}

/** Per server: calls, failures (anything but ok), p50 and p95 of the duration. */
export function callStats(calls: readonly CallEntry[]): ServerCallStats[] {
  const by = new Map<string, CallEntry[]>();
  for (const c of calls) {
    const key = c.server || '(unknown)';
    let list = by.get(key);
    if (!list) by.set(key, (list = []));
    list.push(c);
  }
  return [...by.entries()]
    .map(([server, list]) => {
      const d = list.map((c) => c.durationMs).sort((a, b) => a - b);
      return {
        server,
        calls: list.length,
        errors: list.filter((c) => c.outcome !== 'ok').length,
        p50: quantile(d, 0.5),
        p95: quantile(d, 0.95),
      };
    })
    .sort((a, b) => a.server.localeCompare(b.server));
}

export class CallsPanel {
  private calls: CallEntry[] = [];
  private frame = 0;
  private note = '';

  constructor(private readonly els: CallsElements) {
    for (const o of OUTCOMES) els.outcome.append(h('option', { value: o }, o));
    els.filter.addEventListener('input', () => this.schedule());
    els.outcome.addEventListener('change', () => this.schedule());
    this.schedule();
  }

  /** The list as the daemon has it now (on every (re)connect). */
  reset(calls: CallEntry[], note = ''): void {
    this.calls = calls.slice(-MAX_CALLS);
    this.note = note;
    this.schedule();
  }

  add(calls: CallEntry[]): void {
    this.calls.push(...calls);
    if (this.calls.length > MAX_CALLS) this.calls.splice(0, this.calls.length - MAX_CALLS);
    this.schedule();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private matches(c: CallEntry, text: string, outcome: string): boolean {
    if (outcome && c.outcome !== outcome) return false;
    if (!text) return true;
    return `${c.server} ${c.tool} ${c.outcome} ${c.errorCode ?? ''} ${c.session ?? ''}`.toLowerCase().includes(text);
  }

  private render(): void {
    const text = this.els.filter.value.trim().toLowerCase();
    const outcome = this.els.outcome.value;
    const shown = this.calls.filter((c) => this.matches(c, text, outcome));
    this.els.count.textContent =
      shown.length === this.calls.length ? `(${this.calls.length})` : `(${shown.length} of ${this.calls.length})`;

    const stats = callStats(shown);
    replaceChildren(
      this.els.stats,
      stats.length === 0
        ? null
        : h(
            'table',
            { class: 'call-stats' },
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                h('th', null, 'server'),
                h('th', null, 'calls'),
                h('th', null, 'errors'),
                h('th', null, 'p50'),
                h('th', null, 'p95'),
              ),
            ),
            h(
              'tbody',
              null,
              stats.map((s) =>
                h(
                  'tr',
                  { 'data-server': s.server, class: 'call-stat' },
                  h('td', null, s.server),
                  h('td', { class: 'num' }, String(s.calls)),
                  h('td', { class: `num error-rate${s.errors > 0 ? ' has-errors' : ''}` }, `${Math.round((100 * s.errors) / s.calls)} %`),
                  h('td', { class: 'num p50' }, ms(s.p50)),
                  h('td', { class: 'num p95' }, ms(s.p95)),
                ),
              ),
            ),
          ),
    );

    if (this.calls.length === 0) {
      replaceChildren(this.els.list, h('li', { class: 'empty' }, this.note || 'No tool calls yet.'));
      return;
    }
    const rows = shown.slice(-MAX_ROWS).reverse();
    replaceChildren(
      this.els.list,
      rows.length === 0
        ? h('li', { class: 'empty' }, 'No call matches the filter.')
        : rows.map((c) =>
            h(
              'li',
              { class: `call o-${c.outcome}`, 'data-server': c.server, 'data-tool': c.tool, 'data-outcome': c.outcome },
              h('time', { datetime: c.time, title: c.time }, timeOf(c.time)),
              h('span', { class: 'call-server' }, c.server || '?'),
              h('span', { class: 'call-tool' }, c.tool),
              h('span', { class: 'call-duration' }, ms(c.durationMs)),
              h('span', { class: 'call-outcome', title: c.errorCode ?? '' }, c.errorCode ? `${c.outcome} ${c.errorCode}` : c.outcome),
            ),
          ),
    );
  }
}
