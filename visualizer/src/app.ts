/**
 * The mcp-warden visualizer: one page, no framework. Everything comes from the control channel
 * (connection.ts): the snapshot on connect, then live events; every button sends a command and shows
 * its result or error (a toast and a line in the event log; form errors also inline).
 *
 * The token: `mcp-warden ui` prints `http://127.0.0.1:PORT/#token=<token>`. The fragment never
 * reaches the server; here it is moved into sessionStorage (so a reload works) and removed from the
 * address bar before anything else happens, then offered as the WebSocket subprotocol `auth.<token>`.
 */
import { byId, h, replaceChildren } from './dom.js';
import { CommandError, Connection, type ConnectionStatus } from './connection.js';
import { Statechart } from './statechart.js';
import { CallsPanel } from './calls.js';
import { clock, duration, isDraining, oneLine, resourceText, stateClass, stateHint, whereText } from './format.js';
import type { CallEntry, ConfigStatus, DaemonEvent, DaemonInfo, ServerView, SnapshotMessage, ToolsResult } from './types.js';

const TOKEN_KEY = 'mcp-warden.token';
const TOKEN_RE = /^[A-Za-z0-9_-]{16,512}$/;
const MAX_LOG = 500;

// ---- the token: out of the address bar first -----------------------------------------------------

function takeToken(): string | null {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    let t = '';
    try {
      t = decodeURIComponent(m[1]!);
    } catch {
      // a malformed fragment: ignored below
    }
    history.replaceState(history.state, '', location.pathname + location.search);
    if (TOKEN_RE.test(t)) {
      try {
        sessionStorage.setItem(TOKEN_KEY, t);
      } catch {
        // storage disabled: the token still works for this page view
      }
      return t;
    }
  }
  try {
    const stored = sessionStorage.getItem(TOKEN_KEY);
    return stored && TOKEN_RE.test(stored) ? stored : null;
  } catch {
    return null;
  }
}

const token = takeToken();
// A new #token= pasted into this tab is a same-document navigation: start over with it.
window.addEventListener('hashchange', () => {
  if (/(?:^#|&)token=/.test(location.hash)) location.reload();
});

// ---- state ------------------------------------------------------------------------------------------

interface LogEntry {
  at: number;
  server?: string;
  text: string;
  cls: string;
}

const state = {
  daemon: null as DaemonInfo | null,
  snapshotAt: 0,
  servers: new Map<string, ServerView>(),
  /** Removed from the config, still draining: shown until their actor reaches `stopped`. */
  removing: new Set<string>(),
  ledger: {} as Record<string, Record<string, number>>,
  selected: null as string | null,
  log: [] as LogEntry[],
  status: { kind: 'connecting', attempt: 1 } as ConnectionStatus,
  confirmRemove: null as { name: string; until: number } | null,
  busy: new Set<string>(),
};

// ---- elements ------------------------------------------------------------------------------------

const els = {
  daemon: byId('daemon-info'),
  conn: byId('conn'),
  servers: byId('servers'),
  serverCount: byId('server-count'),
  detail: byId('detail'),
  chart: byId('chart'),
  log: byId<HTMLOListElement>('log'),
  ledger: byId('ledger'),
  toasts: byId('toasts'),
  addBtn: byId<HTMLButtonElement>('add-btn'),
  addDialog: byId<HTMLDialogElement>('add-dialog'),
  addForm: byId<HTMLFormElement>('add-form'),
  addError: byId('add-error'),
  toolsDialog: byId<HTMLDialogElement>('tools-dialog'),
  toolsBody: byId('tools-body'),
  toolsTitle: byId('tools-title'),
  boot: byId('boot'),
};
els.boot.remove();

const chart = new Statechart(els.chart);
const calls = new CallsPanel({
  list: byId('calls'),
  stats: byId('calls-stats'),
  filter: byId<HTMLInputElement>('calls-filter'),
  outcome: byId<HTMLSelectElement>('calls-outcome'),
  count: byId('calls-count'),
});

// ---- toasts and the event log ----------------------------------------------------------------------

function toast(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const close = h('button', { class: 'toast-close', type: 'button', 'aria-label': 'dismiss', title: 'dismiss' }, '×');
  const el = h(
    'div',
    { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'toast-text' }, text),
    close,
  );
  close.addEventListener('click', () => el.remove());
  els.toasts.appendChild(el);
  // Errors stay until dismissed; confirmations fade.
  if (kind === 'ok') window.setTimeout(() => el.remove(), 4_000);
  while (els.toasts.children.length > 6) els.toasts.firstElementChild?.remove();
}

function log(text: string, cls = '', server?: string, at = Date.now()): void {
  const entry: LogEntry = { at, server, text, cls };
  state.log.push(entry);
  const atBottom = els.log.scrollHeight - els.log.scrollTop - els.log.clientHeight < 30;
  els.log.appendChild(logLine(entry));
  while (state.log.length > MAX_LOG) {
    state.log.shift();
    els.log.firstElementChild?.remove();
  }
  if (atBottom) els.log.scrollTop = els.log.scrollHeight;
}

function logLine(e: LogEntry): HTMLElement {
  return h(
    'li',
    { class: `log-line ${e.cls}` },
    h('time', { datetime: new Date(e.at).toISOString() }, clock(e.at)),
    e.server ? h('span', { class: 'log-server' }, e.server) : null,
    h('span', { class: 'log-text' }, e.text),
  );
}

function errorText(err: unknown): string {
  if (err instanceof CommandError) {
    const issues = err.issues?.length ? ` (${err.issues.map((i) => `${i.path}: ${i.message}`).join('; ')})` : '';
    return `${err.code}: ${err.message}${issues}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Runs a command, marks `busyKey` while it runs, reports success and failure. */
async function run<T>(label: string, command: string, args: Record<string, unknown>, busyKey?: string): Promise<T | undefined> {
  if (busyKey) {
    state.busy.add(busyKey);
    render();
  }
  try {
    const result = await connection!.request<T>(command, args);
    log(`${label}: ok`, 'log-ok', typeof args.name === 'string' ? args.name : undefined);
    toast(`${label}: done`);
    return result;
  } catch (err) {
    const text = `${label} failed: ${errorText(err)}`;
    log(text, 'log-error', typeof args.name === 'string' ? args.name : undefined);
    toast(text, 'error');
    return undefined;
  } finally {
    if (busyKey) {
      state.busy.delete(busyKey);
      render();
    }
  }
}

/** OAuth login of a remote server (auth.login): the tab opens at once (popup blockers), the URL follows. */
async function logIn(name: string): Promise<void> {
  const tab = window.open('about:blank', '_blank');
  const result = await run<{ authorizationUrl?: string }>(`log in ${name}`, 'auth.login', { name }, `login:${name}`);
  if (result?.authorizationUrl && tab) tab.location.href = result.authorizationUrl;
  else if (result?.authorizationUrl) window.open(result.authorizationUrl, '_blank');
  else tab?.close();
}

// ---- the connection --------------------------------------------------------------------------------

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
let connection: Connection | null = null;

function onSnapshot(s: SnapshotMessage): void {
  state.daemon = s.daemon;
  state.snapshotAt = Date.now();
  state.ledger = s.ledger;
  if (s.config && !s.config.ok) logConfig(s.config, s.config.at);
  const seen = new Set<string>();
  state.servers.clear();
  state.removing.clear();
  for (const v of s.servers) {
    state.servers.set(v.name, v);
    seen.add(v.name);
  }
  if (state.selected === null || !seen.has(state.selected)) state.selected = sortedNames()[0] ?? null;
  chart.setMachine(s.machine);
  void loadCalls();
  log(
    `connected to mcp-warden ${s.daemon.version} (instance ${s.daemon.instanceId}, pid ${s.daemon.pid}): ${s.servers.length} server${s.servers.length === 1 ? '' : 's'}`,
    'log-conn',
  );
  render();
}

/** While calls.list is in flight, live calls wait here (they may or may not be in its answer). */
let callsQueued: CallEntry[] | null = null;
const callKey = (c: CallEntry) => `${c.time}\n${c.session}\n${c.server}\n${c.tool}\n${c.durationMs}`;

/** The calls the daemon holds, on every (re)connect; then `calls` events keep the panel live. */
async function loadCalls(): Promise<void> {
  callsQueued = [];
  try {
    const r = await connection!.request<{ calls: CallEntry[] }>('calls.list', { limit: 1000 });
    const seen = new Set(r.calls.map(callKey));
    calls.reset([...r.calls, ...(callsQueued ?? []).filter((c) => !seen.has(callKey(c)))]);
  } catch (err) {
    const off = err instanceof CommandError && err.code === 'E_NOT_AVAILABLE';
    calls.reset(callsQueued ?? [], off ? 'The call log is off (settings.callLog).' : `Calls not loaded: ${errorText(err)}`);
  } finally {
    callsQueued = null;
  }
}

let relistTimer = 0;
/** Reconciles with server.list (e.g. a server that stopped because it was disabled shows as disabled). */
function scheduleRelist(): void {
  window.clearTimeout(relistTimer);
  relistTimer = window.setTimeout(async () => {
    if (!connection?.isOpen) return;
    try {
      const r = await connection.request<{ servers: ServerView[] }>('server.list');
      const listed = new Set(r.servers.map((s) => s.name));
      for (const v of r.servers) state.servers.set(v.name, v);
      for (const name of [...state.servers.keys()]) {
        if (listed.has(name)) continue;
        const v = state.servers.get(name)!;
        if (state.removing.has(name) && v.state !== 'stopped') continue;
        state.servers.delete(name);
        state.removing.delete(name);
      }
      render();
    } catch (err) {
      log(`refreshing the server list failed: ${errorText(err)}`, 'log-error');
    }
  }, 150);
}

/** The config file's state is shown in the log: an edit that was not applied stays visible there. */
function logConfig(c: ConfigStatus, at: number): void {
  if (c.ok) log(`config file ${c.path} applied`, 'log-removed', undefined, at);
  else
    log(
      `config file ${c.path} NOT applied; servers keep running as before: ${c.error.code}: ${oneLine(c.error.message, 300)}`,
      'log-error',
      undefined,
      at,
    );
}

function onEvent(e: DaemonEvent): void {
  if (e.type === 'calls') {
    if (callsQueued) callsQueued.push(...e.calls);
    else calls.add(e.calls);
    return;
  }
  if (e.type === 'config') {
    logConfig(e.config, e.at);
    return;
  }
  if (e.type === 'server-removed') {
    const v = state.servers.get(e.name);
    if (v && v.state !== 'stopped' && v.state !== 'disabled') state.removing.add(e.name);
    else state.servers.delete(e.name);
    log('removed from the config', 'log-removed', e.name, e.at);
    scheduleRelist();
    render();
    return;
  }
  const v = e.server;
  const before = state.servers.get(v.name);
  if (e.previousState !== v.state) {
    log(`${e.previousState ?? '(new)'} → ${v.state}`, `log-state ${stateClass(v.state)}`, v.name, e.at);
  }
  if (v.lastError && (!before?.lastError || before.lastError.code !== v.lastError.code || before.lastError.at !== v.lastError.at)) {
    log(`${v.lastError.code}: ${oneLine(v.lastError.message, 200)}`, 'log-error', v.name, e.at);
  }
  if (v.state === 'stopped' && state.removing.has(v.name)) {
    state.servers.delete(v.name);
    state.removing.delete(v.name);
  } else {
    state.servers.set(v.name, v);
  }
  if (v.state === 'stopped') scheduleRelist();
  if (state.selected === null) state.selected = v.name;
  render();
}

function onStatus(s: ConnectionStatus): void {
  const was = state.status.kind;
  state.status = s;
  if (s.kind === 'waiting' && was === 'open') log(`disconnected: ${s.reason}`, 'log-error');
  else if (s.kind === 'waiting' && state.daemon === null && s.attempt === 1) log(`cannot connect: ${s.reason}`, 'log-error');
  // Buttons are enabled only while connected.
  if ((was === 'open') !== (s.kind === 'open')) render();
  else renderStatus();
}

// ---- rendering -------------------------------------------------------------------------------------

function sortedNames(): string[] {
  return [...state.servers.keys()].sort((a, b) => a.localeCompare(b));
}

function render(): void {
  if (state.selected !== null && !state.servers.has(state.selected)) state.selected = sortedNames()[0] ?? null;
  renderStatus();
  renderServers();
  renderDetail();
  renderLedger();
}

let shownStatus: ConnectionStatus | null = null;

/** The connection line and the daemon line; rebuilt only when the status changes (the tick updates the numbers). */
function renderStatus(): void {
  const s = state.status;
  if (s !== shownStatus) {
    shownStatus = s;
    els.conn.className = `conn conn-${s.kind}`;
    els.conn.title = '';
    if (s.kind === 'open') {
      replaceChildren(els.conn, h('span', { class: 'dot' }), 'connected');
    } else if (s.kind === 'connecting') {
      replaceChildren(els.conn, h('span', { class: 'dot' }), s.attempt > 1 ? `connecting… (attempt ${s.attempt})` : 'connecting…');
    } else {
      const retry = h('button', { type: 'button', class: 'link-btn', onclick: () => connection?.retryNow() }, 'retry now');
      replaceChildren(
        els.conn,
        h('span', { class: 'dot' }),
        'disconnected — retrying in ',
        h('span', { 'data-retry-at': String(s.retryAt) }, retryText(s.retryAt)),
        ' ',
        retry,
      );
      els.conn.title = s.reason;
    }
    els.addBtn.disabled = s.kind !== 'open';
    document.body.classList.toggle('offline', s.kind !== 'open');
  }
  const d = state.daemon;
  if (!d) els.daemon.textContent = '';
  else if (s.kind === 'open')
    els.daemon.textContent = `v${d.version} · pid ${d.pid} · up ${duration(d.uptimeMs + (Date.now() - state.snapshotAt))}`;
  else els.daemon.textContent = `last seen: v${d.version} · pid ${d.pid} (what is shown may be out of date)`;
}

function retryText(at: number): string {
  return `${Math.max(0, Math.ceil((at - Date.now()) / 1000))}s`;
}

function badge(stateText: string): HTMLElement {
  return h('span', { class: `badge ${stateClass(stateText)}`, title: stateHint(stateText) }, stateText);
}

function renderServers(): void {
  const names = sortedNames();
  replaceChildren(els.serverCount, String(names.length));
  if (names.length === 0) {
    replaceChildren(
      els.servers,
      h('p', { class: 'empty' }, state.status.kind === 'open' ? 'No servers configured. Add one.' : 'Not connected.'),
    );
    return;
  }
  const list = h('ul', { class: 'server-list' });
  for (const name of names) {
    const s = state.servers.get(name)!;
    const draining = isDraining(s);
    const removing = state.removing.has(name);
    const card = h(
      'li',
      {
        class: `server ${stateClass(s.state)}${state.selected === name ? ' selected' : ''}${removing ? ' removing' : ''}`,
        'data-server': name,
        'data-state': s.state,
      },
      h(
        'button',
        { type: 'button', class: 'server-select', 'aria-pressed': state.selected === name ? 'true' : 'false', onclick: () => select(name) },
        h(
          'span',
          { class: 'server-row' },
          h('span', { class: 'server-name' }, name),
          badge(s.state),
          s.quarantined && s.state !== 'quarantined'
            ? h('span', { class: 'badge s-quarantined', title: 'its tools are hidden until approved' }, 'quarantined')
            : null,
          draining ? h('span', { class: 'badge draining', title: `still holds: ${resourceText(s.resources)}` }, 'draining') : null,
          removing ? h('span', { class: 'badge removing-badge' }, 'removing') : null,
        ),
        h(
          'span',
          { class: 'server-facts' },
          h('span', null, `${s.toolCount} tool${s.toolCount === 1 ? '' : 's'}`),
          h('span', null, whereText(s)),
          h(
            'span',
            { title: 'launch attempt / restarts within the intensity window / reap attempt' },
            `attempt ${s.attempt} · restarts ${s.restartsInWindow} · reap ${s.reapAttempt}`,
          ),
        ),
        s.lastError
          ? h(
              'span',
              { class: 'server-error', title: s.lastError.message },
              h('b', null, s.lastError.code),
              ' ',
              oneLine(s.lastError.message, 90),
            )
          : null,
        draining ? h('span', { class: 'server-draining' }, `draining: ${resourceText(s.resources)}`) : null,
      ),
    );
    list.appendChild(card);
  }
  replaceChildren(els.servers, list);
}

function select(name: string): void {
  state.selected = name;
  state.confirmRemove = null;
  render();
  if (window.matchMedia('(max-width: 800px)').matches) els.detail.scrollIntoView({ behavior: 'smooth', block: 'start' });
}

function actionButton(
  label: string,
  key: string,
  onclick: () => void,
  opts: { cls?: string; title?: string; disabled?: boolean } = {},
): HTMLButtonElement {
  const busy = state.busy.has(key);
  return h(
    'button',
    {
      type: 'button',
      class: `action ${opts.cls ?? ''}`,
      'data-action': key.split(':')[0],
      title: opts.title,
      disabled: busy || opts.disabled || state.status.kind !== 'open',
      onclick,
    },
    busy ? `${label}…` : label,
  );
}

function renderDetail(): void {
  const name = state.selected;
  const s = name ? state.servers.get(name) : undefined;
  if (!name || !s) {
    replaceChildren(els.detail, h('p', { class: 'empty' }, state.servers.size ? 'Select a server.' : 'No server selected.'));
    chart.setActive(null);
    replaceChildren(byId('chart-caption'), 'Server statechart');
    return;
  }
  const disabled = s.state === 'disabled';
  const confirming = state.confirmRemove?.name === name && state.confirmRemove.until > Date.now();
  const actions = h(
    'div',
    { class: 'actions' },
    actionButton('Restart', `restart:${name}`, () => void run(`restart ${name}`, 'server.restart', { name }, `restart:${name}`), {
      disabled,
      title: disabled ? 'enable it first' : 'stop and start it again (also leaves a crash-loop halt)',
    }),
    disabled
      ? actionButton('Enable', `enable:${name}`, () => void run(`enable ${name}`, 'server.enable', { name }, `enable:${name}`), {
          title: 'persist "disabled": false and start it',
        })
      : actionButton('Disable', `disable:${name}`, () => void run(`disable ${name}`, 'server.disable', { name }, `disable:${name}`), {
          title: 'persist "disabled": true and stop it (the entry is kept)',
        }),
    // quarantineScope "tool": a running server whose changed tools are withheld alone is reviewed too.
    s.quarantined || (s.state === 'running' && s.lastError?.code === 'E_TOOLS_CHANGED')
      ? actionButton('Review & approve…', `approve:${name}`, () => void openTools(name, true), {
          cls: 'primary',
          title: s.quarantined
            ? 'see the tools it would expose, then approve'
            : 'some tools changed and are withheld: review them, then approve',
        })
      : null,
    s.quarantined
      ? null
      : actionButton(
          'Quarantine',
          `quarantine:${name}`,
          () => void run(`quarantine ${name}`, 'server.quarantine', { name }, `quarantine:${name}`),
          { title: 'hide its tools until approved (it keeps running)' },
        ),
    actionButton('Tools', `tools:${name}`, () => void openTools(name, false), { title: 'the tools it lists (also while quarantined)' }),
    // A remote server waiting for an OAuth login (state starting.needsAuth): the daemon starts the login,
    // the authorization page opens in a new tab and redirects back to the daemon.
    ...(s.state.toLowerCase().includes('auth')
      ? [
          actionButton('Log in…', `login:${name}`, () => void logIn(name), {
            cls: 'primary',
            title: 'OAuth login: opens the authorization page; the server starts once it redirects back',
          }),
        ]
      : []),
    confirming
      ? actionButton(
          'Confirm remove',
          `remove:${name}`,
          () => {
            state.confirmRemove = null;
            state.removing.add(name);
            void run(`remove ${name}`, 'server.remove', { name }, `remove:${name}`).then((r) => {
              if (r === undefined) state.removing.delete(name);
              render();
            });
          },
          { cls: 'danger', title: 'stop it and delete its entry from the config file' },
        )
      : actionButton(
          'Remove…',
          `remove:${name}`,
          () => {
            state.confirmRemove = { name, until: Date.now() + 5_000 };
            render();
            window.setTimeout(render, 5_100);
          },
          { cls: 'danger-outline', title: 'stop it and delete its entry (asks to confirm)' },
        ),
  );
  const fact = (k: string, v: string | HTMLElement, title?: string) =>
    h('div', { class: 'fact', title }, h('dt', null, k), h('dd', null, v));
  const err = s.lastError;
  replaceChildren(
    els.detail,
    h(
      'div',
      { class: 'detail-head' },
      h('h2', { class: 'detail-name' }, name),
      badge(s.state),
      s.quarantined && s.state !== 'quarantined' ? h('span', { class: 'badge s-quarantined' }, 'tools hidden') : null,
      isDraining(s) ? h('span', { class: 'badge draining' }, 'draining') : null,
    ),
    h('p', { class: 'hint' }, stateHint(s.state)),
    actions,
    h(
      'dl',
      { class: 'facts' },
      fact('where', whereText(s)),
      fact('tools', String(s.toolCount)),
      fact('attempt', String(s.attempt), 'launch attempt after crashes'),
      fact('restarts', String(s.restartsInWindow), 'restarts within the intensity window'),
      fact('reap attempt', String(s.reapAttempt), 'attempts to verify that everything it held is gone'),
      fact('up since', s.upSince ? h('span', { 'data-since': String(s.upSince) }, upSinceText(s.upSince)) : '-'),
      fact('holds', resourceText(s.resources), 'its resources in the ledger'),
    ),
    err
      ? h(
          'div',
          { class: 'last-error' },
          h('div', null, h('b', null, err.code), err.at ? h('time', null, ` at ${clock(err.at)}`) : null),
          h('pre', null, err.message),
        )
      : null,
  );
  replaceChildren(byId('chart-caption'), `Server statechart — `, h('b', null, name), ` is in `, h('code', null, s.state));
  chart.setActive(disabled ? null : s.state);
}

function upSinceText(since: number): string {
  return `${clock(since)} (${duration(Date.now() - since)})`;
}

/** Once a second: the countdown, the uptime, and the "up since" durations (without re-rendering). */
function tick(): void {
  renderStatus();
  for (const el of document.querySelectorAll<HTMLElement>('[data-retry-at]')) el.textContent = retryText(Number(el.dataset.retryAt));
  if (state.status.kind === 'open') {
    for (const el of document.querySelectorAll<HTMLElement>('[data-since]')) el.textContent = upSinceText(Number(el.dataset.since));
  }
}

function renderLedger(): void {
  // Server owners come live from the server views; the others are as of the last snapshot.
  const rows: Array<{ owner: string; counts: Record<string, number>; live: boolean; draining: boolean }> = [];
  const serverOwners = new Set<string>();
  for (const name of sortedNames()) {
    const s = state.servers.get(name)!;
    serverOwners.add(`server:${name}`);
    rows.push({ owner: `server:${name}`, counts: s.resources, live: true, draining: isDraining(s) });
  }
  for (const [owner, counts] of Object.entries(state.ledger).sort(([a], [b]) => a.localeCompare(b))) {
    if (owner.startsWith('server:')) continue;
    rows.push({ owner, counts, live: false, draining: false });
  }
  const table = h(
    'table',
    { class: 'ledger' },
    h('thead', null, h('tr', null, h('th', null, 'owner'), h('th', null, 'resources held'))),
    h(
      'tbody',
      null,
      rows.map((r) =>
        h(
          'tr',
          { class: r.draining ? 'draining-row' : '', 'data-owner': r.owner },
          h('td', null, r.owner, r.live ? null : h('span', { class: 'muted', title: 'counted when this page connected' }, ' *')),
          h('td', null, resourceText(r.counts), r.draining ? h('span', { class: 'badge draining' }, 'draining') : null),
        ),
      ),
    ),
  );
  replaceChildren(els.ledger, table, h('p', { class: 'muted small' }, '* as of connect; server rows are live.'));
}

// ---- tools / approve ---------------------------------------------------------------------------------

async function openTools(name: string, forApproval: boolean): Promise<void> {
  replaceChildren(els.toolsTitle, forApproval ? `Review ${name} before approving` : `Tools of ${name}`);
  replaceChildren(els.toolsBody, h('p', { class: 'muted' }, 'Loading the tools…'));
  if (!els.toolsDialog.open) els.toolsDialog.showModal();
  let r: ToolsResult;
  try {
    r = await connection!.request<ToolsResult>('server.tools', { name });
  } catch (err) {
    const text = `tools of ${name}: ${errorText(err)}`;
    replaceChildren(els.toolsBody, h('p', { class: 'form-error', role: 'alert' }, text));
    log(text, 'log-error', name);
    toast(text, 'error');
    return;
  }
  const changed = r.changes && r.changes.length > 0 ? r.changes.map((c) => c.summary).join('\n') : null;
  const items = r.tools.map((t) =>
    h(
      'li',
      { class: 'tool', 'data-tool': t.name },
      h('div', { class: 'tool-name' }, h('code', null, t.name)),
      t.description ? h('p', { class: 'tool-desc' }, t.description) : h('p', { class: 'tool-desc muted' }, '(no description)'),
      h('details', null, h('summary', null, 'input schema'), h('pre', { class: 'schema' }, JSON.stringify(t.inputSchema ?? {}, null, 2))),
      t.outputSchema !== undefined
        ? h('details', null, h('summary', null, 'output schema'), h('pre', { class: 'schema' }, JSON.stringify(t.outputSchema, null, 2)))
        : null,
      // Also what clients see besides the text: covered by the fingerprint, so shown before approval.
      ...(['title', 'annotations', '_meta', 'icons'] as const).map((k) =>
        (t as Record<string, unknown>)[k] !== undefined
          ? h(
              'details',
              { open: true },
              h('summary', null, k),
              h('pre', { class: 'schema' }, JSON.stringify((t as Record<string, unknown>)[k], null, 2)),
            )
          : null,
      ),
    ),
  );
  const offered: [string, string, Record<string, unknown>][] = [
    ...(r.prompts ?? []).map((p): [string, string, Record<string, unknown>] => ['prompt', 'name', p]),
    ...(r.resourceTemplates ?? []).map((t): [string, string, Record<string, unknown>] => ['resource template', 'uriTemplate', t]),
  ];
  const notUp = r.tools.length === 0 && r.state !== 'running' && r.state !== 'quarantined';
  // Quarantined, or (quarantineScope "tool") running with changed tools withheld: there is something to approve.
  const pending = r.quarantined || (r.changes?.length ?? 0) > 0;
  const approve = h(
    'button',
    { type: 'button', class: 'primary', 'data-action': 'approve-confirm', disabled: !pending },
    pending ? `Approve: expose ${r.tools.length} tool${r.tools.length === 1 ? '' : 's'}` : 'Not quarantined',
  );
  approve.addEventListener('click', async () => {
    approve.disabled = true;
    // The fingerprint of the tools shown in this dialog: if the server changed them since, the daemon refuses.
    const ok = await run(`approve ${name}`, 'server.approve', { name, fingerprint: r.fingerprint }, `approve:${name}`);
    if (ok !== undefined) els.toolsDialog.close();
    else approve.disabled = false;
  });
  replaceChildren(
    els.toolsBody,
    h(
      'p',
      null,
      `State `,
      h('code', null, r.state),
      r.quarantined
        ? ' · quarantined: these tools are hidden from clients until approved.'
        : pending
          ? ' · the changed tools below are withheld from clients until approved; the others are exposed.'
          : ' · its tools are exposed.',
    ),
    changed
      ? h('div', { class: 'tool-diff' }, h('b', null, `Changed since the last approval (${r.approvedAt ?? '?'}):`), h('pre', null, changed))
      : null,
    r.flags?.length
      ? h(
          'div',
          { class: 'tool-diff', 'data-flags': String(r.flags.length) },
          h('b', null, 'Read these before approving:'),
          h(
            'ul',
            null,
            r.flags.map((f) => h('li', null, h('code', null, f.tool), ` ${f.path}: ${f.kind}: ${f.detail}`)),
          ),
        )
      : null,
    notUp ? h('p', { class: 'muted' }, 'The server is not up; its tools are known once it runs.') : null,
    h('ul', { class: 'tools' }, items),
    // Prompts and resource templates are approved with the tools (the fingerprint covers them): shown in full.
    offered.length > 0
      ? h(
          'ul',
          { class: 'tools', 'data-offered': String(offered.length) },
          offered.map(([label, key, item]) =>
            h(
              'li',
              { class: 'tool' },
              h('div', { class: 'tool-name' }, `${label} `, h('code', null, String(item[key]))),
              h('pre', { class: 'schema' }, JSON.stringify(item, null, 2)),
            ),
          ),
        )
      : null,
    forApproval || pending ? h('div', { class: 'dialog-actions' }, approve) : null,
  );
}

// ---- add ---------------------------------------------------------------------------------------------

function field(name: string): HTMLInputElement | HTMLTextAreaElement {
  return els.addForm.elements.namedItem(name) as HTMLInputElement | HTMLTextAreaElement;
}

function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function entryFromForm(): { name: string; entry: Record<string, unknown>; trusted: boolean } {
  const name = field('name').value.trim();
  const quarantined = (field('quarantined') as HTMLInputElement).checked;
  const json = field('json').value.trim();
  let entry: Record<string, unknown>;
  if (json) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (err) {
      throw new Error(`JSON entry: not valid JSON (${(err as Error).message})`, { cause: err });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('JSON entry: expected an object such as {"command": "npx", "args": ["-y", "pkg"]}');
    entry = parsed as Record<string, unknown>;
  } else {
    const command = field('command').value.trim();
    if (!command) throw new Error('command: required (or give a JSON entry)');
    entry = {
      command,
      args: field('args')
        .value.split(/\r?\n/)
        .filter((a) => a.trim() !== ''),
    };
    const env: Record<string, string> = {};
    for (const l of lines(field('env').value)) {
      const eq = l.indexOf('=');
      if (eq <= 0) throw new Error(`env: expected KEY=VALUE per line, got "${oneLine(l, 40)}"`);
      env[l.slice(0, eq).trim()] = l.slice(eq + 1);
    }
    if (Object.keys(env).length) entry.env = env;
    const cwd = field('cwd').value.trim();
    if (cwd) entry.cwd = cwd;
  }
  if (quarantined) entry.quarantined = true;
  return { name, entry, trusted: !quarantined };
}

els.addBtn.addEventListener('click', () => {
  replaceChildren(els.addError);
  els.addDialog.showModal();
  field('name').focus();
});
byId('add-cancel').addEventListener('click', () => els.addDialog.close());
byId('tools-close').addEventListener('click', () => els.toolsDialog.close());
const actionsToggle = byId<HTMLInputElement>('chart-actions');
actionsToggle.addEventListener('change', () => els.chart.classList.toggle('show-actions', actionsToggle.checked));

els.addForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  replaceChildren(els.addError);
  let args: ReturnType<typeof entryFromForm>;
  try {
    args = entryFromForm();
  } catch (err) {
    replaceChildren(els.addError, (err as Error).message);
    return;
  }
  const submit = byId<HTMLButtonElement>('add-submit');
  submit.disabled = true;
  try {
    const r = await connection!.request<{ name: string; started: boolean; warnings?: { path: string; message: string }[] }>(
      'server.add',
      args,
    );
    const notes = (r.warnings ?? []).map((w) => `${w.path}: ${w.message}`);
    log(`added${r.started ? ' (starting)' : ' (disabled)'}${notes.length ? `; notes: ${notes.join('; ')}` : ''}`, 'log-ok', r.name);
    toast(`added ${r.name}`);
    state.removing.delete(r.name);
    state.selected = r.name;
    els.addForm.reset();
    els.addDialog.close();
    render();
  } catch (err) {
    const text = errorText(err);
    const issues =
      err instanceof CommandError && err.issues?.length
        ? h(
            'ul',
            null,
            err.issues.map((i) => h('li', null, `${i.path}: ${i.message}`)),
          )
        : null;
    replaceChildren(els.addError, `Not added: ${err instanceof CommandError ? `${err.code}: ${err.message}` : text}`, issues);
    log(`add ${args.name} failed: ${text}`, 'log-error', args.name || undefined);
    toast(`add ${args.name} failed: ${text}`, 'error');
  } finally {
    submit.disabled = false;
  }
});

// ---- start -------------------------------------------------------------------------------------------

function showNoToken(): void {
  const input = h('input', { type: 'password', id: 'token-input', autocomplete: 'off', placeholder: 'token', 'aria-label': 'token' });
  const form = h(
    'form',
    { class: 'token-form' },
    h(
      'p',
      null,
      "This page needs the daemon's token. Open it with the URL that ",
      h('code', null, 'mcp-warden ui'),
      ' prints, or paste the token from ',
      h('code', null, '<data-dir>/token'),
      ':',
    ),
    input,
    h('button', { type: 'submit', class: 'primary' }, 'Connect'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!TOKEN_RE.test(t)) {
      toast('that is not a token (43 characters of A-Z a-z 0-9 _ -)', 'error');
      return;
    }
    try {
      sessionStorage.setItem(TOKEN_KEY, t);
    } catch {
      // fine: used for this view only
    }
    location.reload();
  });
  replaceChildren(els.detail, form);
  replaceChildren(els.conn, h('span', { class: 'dot' }), 'no token');
  els.conn.className = 'conn conn-waiting';
  els.addBtn.disabled = true;
}

if (token === null) {
  showNoToken();
} else {
  connection = new Connection(wsUrl, token, {
    snapshot: onSnapshot,
    event: onEvent,
    status: onStatus,
    protocolError: (code, message) => {
      log(`${code}: ${message}`, 'log-error');
      toast(`${code}: ${message}`, 'error');
    },
  });
  connection.start();
  render();
  // The countdown and the uptime tick once a second.
  window.setInterval(tick, 1_000);
}
