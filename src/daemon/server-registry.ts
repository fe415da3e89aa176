/**
 * The server registry: the one place where server commands and approval policy live. Each command
 * (add, remove, enable, disable, restart, approve, quarantine) updates the config file, the approvals
 * store and the server actor together, in that order of durability: the files first, the actor last,
 * so a command that fails part-way has changed no actor, and a failed second write undoes the first.
 * Mutations run one at a time, so the files and the actor system never interleave two commands.
 *
 * Transports (the control channel, the CLI through it, the visualizer through it) only frame and
 * authenticate; they call these methods and report the coded errors they throw.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { ErrorCodes, WardenError } from '../core/error-codes.js';
import { approvedToolOf, diffTools, type ToolChange } from '../core/tool-fingerprint.js';
import { approvedItemsOf, diffItems, fingerprintOffer, type OfferLists } from '../core/offer-fingerprint.js';
import { flagTools, type ToolFlag } from '../core/tool-flags.js';
import type { ServerEntry } from '../config/config-types.js';
import { parseServerEntry, validateServerName } from '../config/config-schema.js';
import type { LoadedConfig } from '../adapters/store/config-file.js';
import type { ApprovalsStore, ServerApproval } from '../adapters/store/approvals-store.js';
import type { OfferedLists, ToolCheck, UpstreamToolInfo } from '../machines/server-machine.js';

/** What the registry needs from the actor system: start/replace, stop, forward, and read back. */
export interface ServerActorsPort {
  /** Start a server actor for the entry, replacing (after it drained) one of the same name. */
  start(name: string, entry: ServerEntry): void;
  /** Stop the server's actor, if it has one. */
  stop(name: string): void;
  send(name: string, command: 'RESTART' | 'APPROVE' | 'QUARANTINE'): void;
  /** The tools the live actor holds (also while quarantined); undefined without an actor. */
  toolsOf(name: string): UpstreamToolInfo[] | undefined;
  /** The live actor's quarantine flag; undefined without an actor. */
  quarantinedOf(name: string): boolean | undefined;
  /** The prompts and resource templates the live actor holds (as checked); none without an actor. */
  listsOf?(name: string): OfferLists | undefined;
}

/** Read-modify-write of the raw config document (src/adapters/store/config-file.ts `updateConfigFile`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the raw JSON document; the updater validates it after the mutation
type ConfigUpdater = (mutate: (raw: any) => void) => Promise<LoadedConfig>;

export interface ServerRegistryOptions {
  configPath: string;
  /** The servers of the loaded config, by name, in config order. */
  servers: Record<string, ServerEntry>;
  approvals: ApprovalsStore;
  updateConfig: ConfigUpdater;
  /** The run-time quarantine policy (`quarantineNewServers`: 1 quarantine, 0 trust on first use). */
  quarantineNewServers: () => number;
  /** What a change withholds (`quarantineScope`): the whole server, or the changed tools alone. Default `server`. */
  quarantineScope?: () => 'server' | 'tool';
  logger: Logger;
  /** Called after a server was forgotten, so UIs can drop it. */
  onRemoved?: (name: string) => void;
}

export interface AddResult {
  name: string;
  entry: ServerEntry;
  started: boolean;
  trusted: boolean;
  quarantined: boolean;
  warnings: { path: string; message: string }[];
}

/** What one hot reload changed (src/daemon/config-reload.ts reports it). */
export interface ReloadResult {
  added: string[];
  removed: string[];
  restarted: string[];
  /** Entries whose only change started or stopped them (`disabled` flipped). */
  enabled: string[];
  disabled: string[];
}

/** Thrown out of a config mutation to mean "the file already says so": nothing is written. */
const NO_CHANGE = Symbol('no change');

export class ServerRegistry {
  private readonly entries: Map<string, ServerEntry>;
  private chain: Promise<unknown> = Promise.resolve();
  private actors: ServerActorsPort | undefined;

  constructor(private readonly opts: ServerRegistryOptions) {
    this.entries = new Map(Object.entries(opts.servers));
  }

  /** Connect the actor system (it is created after the registry, since its actors call checkTools). */
  bind(actors: ServerActorsPort): void {
    this.actors = actors;
  }

  get configPath(): string {
    return this.opts.configPath;
  }

  entry(name: string): ServerEntry | undefined {
    return this.entries.get(name);
  }

  /** Configured servers in config order. */
  list(): [string, ServerEntry][] {
    return [...this.entries];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  toolsOf(name: string): UpstreamToolInfo[] | undefined {
    return this.actors?.toolsOf(name);
  }

  /**
   * What a person inspects before approving: the tools as listed now, their set fingerprint (what
   * `approve` must be given back), and, when the server has an approval record, how the tools differ
   * from it (`changes`; null without a record).
   */
  toolView(name: string): {
    tools: UpstreamToolInfo[];
    prompts: Record<string, unknown>[];
    resourceTemplates: Record<string, unknown>[];
    fingerprint: string;
    changes: ToolChange[] | null;
    approvedAt: string | null;
    flags: ToolFlag[];
  } {
    this.require(name);
    const tools = this.actors?.toolsOf(name) ?? [];
    const lists = this.listsOf(name);
    const record = this.opts.approvals.get(name);
    // A lost record (approved before, record gone) shows every tool as new: nothing of it stands approved.
    const lost = !record && this.opts.approvals.approvedBefore(name) !== undefined;
    return {
      tools,
      ...lists,
      fingerprint: fingerprintOffer(tools, lists),
      changes: record ? [...changesAgainst(record, tools), ...offerChanges(record, lists)] : lost ? allNew(tools, lists) : null,
      approvedAt: record?.approvedAt ?? null,
      // Look-alikes are also checked against the other servers' tools (a "read_fi1e" shadowing one).
      flags: flagTools(
        tools,
        [...this.entries.keys()].filter((n) => n !== name).flatMap((n) => (this.actors?.toolsOf(n) ?? []).map((t) => t.name)),
      ),
    };
  }

  /**
   * Tool integrity (docs/quarantine.md), called with every fetched tool list: a config server not
   * marked quarantined is trusted on first use — unless it had an approval record before, which is
   * then missing: that quarantines it (E_APPROVAL_MISSING), never trust on first use again. With a
   * record the list is compared with the approved fingerprints and the changes are returned; the
   * statechart re-quarantines the server on them (quarantineScope "server") or withholds the changed
   * tools alone ("tool").
   */
  checkTools(name: string, tools: UpstreamToolInfo[], lists: OfferedLists = {}): ToolCheck {
    const record = this.opts.approvals.get(name);
    const offered: OfferLists = { prompts: lists.prompts ?? [], resourceTemplates: lists.resourceTemplates ?? [] };
    if (!record) {
      const since = this.opts.approvals.approvedBefore(name);
      if (since !== undefined) {
        const message =
          `server "${name}" was approved before (first on ${since}) but its approval record is missing from ` +
          `${this.opts.approvals.file}; quarantined until a person approves its tools again`;
        this.opts.logger.warn({ server: name, code: ErrorCodes.APPROVAL_MISSING }, message);
        this.persistChangeQuarantine(name);
        return { toolChanges: allNew(tools, offered), quarantine: { code: ErrorCodes.APPROVAL_MISSING, message } };
      }
      const entry = this.entries.get(name);
      if (entry && !entry.quarantined) {
        this.opts.approvals
          .set(name, approvalOf(tools, lists, 'trust-on-first-use'))
          .catch((err: unknown) => this.opts.logger.error({ err, server: name }, 'could not persist approvals'));
      }
      return {};
    }
    const toolScope = (this.opts.quarantineScope?.() ?? 'server') === 'tool';
    const toolChanges = changesAgainst(record, tools);
    const itemChanges = this.checkOffered(name, record, lists, toolChanges.length === 0);
    // A changed prompt or template quarantines the whole server in either scope (docs/quarantine.md).
    const scope = toolScope && itemChanges.length === 0 ? 'tool' : 'server';
    const changes = [...toolChanges, ...itemChanges];
    if (changes.length > 0) {
      this.opts.logger.warn({ server: name, scope, changes: changes.map((c) => c.summary) }, 'tools differ from the approved fingerprints');
      if (scope === 'server') this.persistChangeQuarantine(name);
    }
    // Tool scope: which tools are withheld is kept with the record, so a restart does not forget it.
    if (toolScope || record.withheld) {
      this.persistWithheld(
        name,
        toolChanges.map((c) => c.tool),
      );
    }
    return { toolChanges: changes, withhold: scope === 'tool' ? 'tools' : 'server' };
  }

  /**
   * The prompts and resource templates against the record. A record from before they were
   * fingerprinted has no `prompts`/`resourceTemplates`: the first check after the upgrade records
   * the lists as approved, but only while the server stands approved and unchanged (its tools match,
   * nothing withheld, not flagged quarantined); otherwise they count as new, i.e. unapproved, so a
   * person sees and approves them with the tools (docs/quarantine.md, "Upgrading"). A list whose
   * fetch failed (undefined) is left alone: not compared, not recorded.
   */
  private checkOffered(name: string, record: ServerApproval, lists: OfferedLists, toolsUnchanged: boolean): ToolChange[] {
    const migrate: Partial<Pick<ServerApproval, 'prompts' | 'resourceTemplates'>> = {};
    const changes: ToolChange[] = [];
    const standing = toolsUnchanged && !record.withheld?.length && this.entries.get(name)?.quarantined === false;
    for (const kind of ['prompts', 'resourceTemplates'] as const) {
      const items = lists[kind];
      if (!items) continue;
      const item = kind === 'prompts' ? 'prompt' : 'resourceTemplate';
      const approved = record[kind];
      if (approved === undefined && standing) migrate[kind] = approvedItemsOf(item, items);
      else changes.push(...diffItems(item, items, approved ?? {}));
    }
    if (Object.keys(migrate).length > 0) {
      this.opts.logger.info(
        { server: name, lists: Object.keys(migrate) },
        'recording prompts/resource templates of an approved server (first check since they are fingerprinted)',
      );
      this.opts.approvals
        .set(name, { ...record, ...migrate })
        .catch((err: unknown) => this.opts.logger.error({ err, server: name }, 'could not persist approvals'));
    }
    return changes;
  }

  // ---- commands --------------------------------------------------------------------------------

  /** Add a server from a raw entry: validated, persisted (quarantined by policy unless trusted), started. */
  add(name: string, rawEntry: unknown, opts: { trusted?: boolean } = {}): Promise<AddResult> {
    const problem = validateServerName(name);
    if (problem) return Promise.reject(new WardenError(ErrorCodes.BAD_ARGS, `invalid server name "${name}": ${problem}`));
    const parsed = parseServerEntry(name, rawEntry, path.dirname(path.resolve(this.opts.configPath)));
    if (!parsed.ok) {
      return Promise.reject(
        new WardenError(
          ErrorCodes.CONFIG_INVALID,
          `invalid server entry: ${parsed.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
          { issues: parsed.issues },
        ),
      );
    }
    const trusted = opts.trusted ?? false;
    // Policy (docs/quarantine.md): a server added at run time starts quarantined unless the command
    // explicitly trusts it; a trusted one is trusted on first use like a config server.
    const quarantine = !trusted && this.opts.quarantineNewServers() === 1;
    return this.serialized(async () => {
      if (this.entries.has(name)) throw new WardenError(ErrorCodes.SERVER_EXISTS, `a server named "${name}" already exists`);
      const loaded = await this.opts.updateConfig((raw) => {
        if (raw.mcpServers === undefined) raw.mcpServers = {};
        if (typeof raw.mcpServers !== 'object' || raw.mcpServers === null || Array.isArray(raw.mcpServers)) {
          throw new WardenError(ErrorCodes.CONFIG_INVALID, `"mcpServers" in ${this.opts.configPath} is not an object`);
        }
        if (Object.hasOwn(raw.mcpServers, name)) {
          throw new WardenError(ErrorCodes.SERVER_EXISTS, `a server named "${name}" already exists in ${this.opts.configPath}`);
        }
        raw.mcpServers[name] = quarantine ? { ...(rawEntry as object), quarantined: true } : rawEntry;
      });
      const entry = loaded.config.mcpServers[name] ?? parsed.entry;
      this.entries.set(name, entry);
      if (!entry.disabled) this.actorsOrThrow().start(name, entry);
      return { name, entry, started: !entry.disabled, trusted, quarantined: entry.quarantined, warnings: parsed.warnings };
    });
  }

  /** Stop and forget a server: out of the config file, its approvals forgotten, its actor stopped. */
  remove(name: string): Promise<{ name: string; removed: true }> {
    return this.serialized(async () => {
      const known = this.entries.has(name);
      const inFile = await this.updateIfChanged((raw) => {
        const servers = raw?.mcpServers;
        if (!servers || typeof servers !== 'object' || !Object.hasOwn(servers, name)) throw NO_CHANGE;
        delete servers[name];
      });
      if (!known && !inFile) throw new WardenError(ErrorCodes.UNKNOWN_SERVER, `no server named "${name}"`);
      this.entries.delete(name);
      // The entry is gone from the file; a stale approval could only matter if the name came back,
      // and then it must start from the policy again, so a failed delete is logged, not fatal.
      await this.opts.approvals
        .delete(name)
        .catch((err: unknown) => this.opts.logger.error({ err, server: name }, 'could not persist approvals'));
      this.actorsOrThrow().stop(name);
      this.opts.onRemoved?.(name);
      return { name, removed: true as const };
    });
  }

  /** Enable or disable a server: the config flag first, then start or stop its actor. */
  setEnabled(name: string, enabled: boolean): Promise<{ name: string; changed: boolean }> {
    return this.serialized(async () => {
      const current = this.require(name);
      await this.persistFlag(name, 'disabled', !enabled);
      const changed = current.disabled === enabled;
      if (changed) {
        const entry = { ...current, disabled: !enabled };
        this.entries.set(name, entry);
        if (enabled) this.actorsOrThrow().start(name, entry);
        else this.actorsOrThrow().stop(name);
      }
      return { name, changed };
    });
  }

  restart(name: string): { name: string } {
    const entry = this.require(name);
    if (entry.disabled) throw new WardenError(ErrorCodes.SERVER_DISABLED, `server "${name}" is disabled; enable it instead`);
    this.actorsOrThrow().send(name, 'RESTART');
    return { name };
  }

  /**
   * Approve what the person inspected: `fingerprint` is the tool-set fingerprint `toolView` showed
   * them; if the server's tools are no longer exactly those, nothing happens (E_TOOLS_MISMATCH), so
   * a server cannot swap a description between inspection and approval. Otherwise the tools become
   * its approved fingerprints (approvals.json), its `quarantined` flag is cleared in the config file,
   * and only then is the actor told. If the config write fails, the approval record is put back.
   */
  approve(name: string, fingerprint: string): Promise<{ name: string; changed: boolean }> {
    return this.serialized(async () => {
      const entry = this.require(name);
      const actors = this.actorsOrThrow();
      const tools = actors.toolsOf(name) ?? [];
      const lists = this.listsOf(name);
      const current = fingerprintOffer(tools, lists);
      if (current !== fingerprint) {
        throw new WardenError(
          ErrorCodes.TOOLS_MISMATCH,
          `the tools of "${name}" are not the ones shown (fingerprint ${clipHash(fingerprint)}, now ${clipHash(current)}); inspect them again and approve what you see`,
        );
      }
      const previous = this.opts.approvals.get(name);
      // Changed: the server was quarantined, or (tool scope) some of its tools were withheld.
      const changed =
        (actors.quarantinedOf(name) ?? entry.quarantined) !== false ||
        !previous ||
        changesAgainst(previous, tools).length > 0 ||
        offerChanges(previous, lists).length > 0;
      await this.opts.approvals.set(name, approvalOf(tools, lists, 'person'));
      try {
        await this.persistFlag(name, 'quarantined', false);
      } catch (err) {
        await this.restoreApproval(name, previous);
        throw err;
      }
      this.entries.set(name, { ...entry, quarantined: false });
      actors.send(name, 'APPROVE');
      return { name, changed };
    });
  }

  /** Withhold a server's tools until approved again: the config flag first, then the actor. */
  quarantine(name: string): Promise<{ name: string; changed: boolean }> {
    return this.serialized(async () => {
      const entry = this.require(name);
      const actors = this.actorsOrThrow();
      const changed = (actors.quarantinedOf(name) ?? entry.quarantined) !== true;
      await this.persistFlag(name, 'quarantined', true);
      this.entries.set(name, { ...entry, quarantined: true });
      actors.send(name, 'QUARANTINE');
      return { name, changed };
    });
  }

  /**
   * Hot reload (docs/config.md): make the registry and the actors match the config file as `load`
   * reads it now. `load` runs inside the mutation queue, so a command that is writing the file has
   * finished (file and map updated) before the file is read: a file written by a command then equals
   * the map and nothing happens, which is how the registry's own writes cause no second apply.
   * New entries follow the config-file policy (trusted on first use unless `"quarantined": true`),
   * removed ones are stopped and forgotten like `remove`, changed ones are restarted (start on an
   * existing name drains the old actor first), equal ones are not touched. A load that throws
   * (invalid file) changes nothing.
   */
  reload(load: () => Promise<LoadedConfig>): Promise<ReloadResult> {
    return this.serialized(async () => {
      const next = (await load()).config.mcpServers;
      const actors = this.actorsOrThrow();
      const result: ReloadResult = { added: [], removed: [], restarted: [], enabled: [], disabled: [] };
      for (const name of [...this.entries.keys()]) {
        if (Object.hasOwn(next, name)) continue;
        const wasRunning = !this.entries.get(name)!.disabled;
        this.entries.delete(name);
        await this.opts.approvals
          .delete(name)
          .catch((err: unknown) => this.opts.logger.error({ err, server: name }, 'could not persist approvals'));
        if (wasRunning) actors.stop(name);
        this.opts.onRemoved?.(name);
        result.removed.push(name);
      }
      const previous = this.entries;
      // Config order, as at start (list() follows the file).
      const ordered = new Map<string, ServerEntry>();
      for (const [name, entry] of Object.entries(next)) {
        const old = previous.get(name);
        ordered.set(name, old && sameEntry(old, entry) ? old : entry);
        if (!old) {
          if (!entry.disabled) actors.start(name, entry);
          result.added.push(name);
        } else if (!sameEntry(old, entry)) {
          if (entry.disabled) {
            if (!old.disabled) actors.stop(name);
            result.disabled.push(name);
          } else {
            actors.start(name, entry);
            (old.disabled && sameEntry({ ...old, disabled: false }, entry) ? result.enabled : result.restarted).push(name);
          }
        }
      }
      previous.clear();
      for (const [name, entry] of ordered) previous.set(name, entry);
      return result;
    });
  }

  /** Resolves once every mutation queued so far has finished (shutdown waits for this). */
  idle(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /**
   * A quarantine caused by a change must survive a restart (docs/quarantine.md): the server could
   * otherwise flip its tools back while the daemon is down and run unapproved changes later. The flag
   * goes into the config file like a person's quarantine; `approve` clears it. The actor is already
   * quarantined by the statechart, so a failed write only loses the persistence, and says so.
   */
  private persistChangeQuarantine(name: string): void {
    void this.serialized(async () => {
      const entry = this.entries.get(name);
      if (!entry || entry.quarantined) return;
      await this.persistFlag(name, 'quarantined', true);
      this.entries.set(name, { ...entry, quarantined: true });
    }).catch((err: unknown) =>
      this.opts.logger.error(
        { err, server: name },
        'could not persist the quarantine of a changed server; it holds until the daemon stops',
      ),
    );
  }

  /**
   * Tool scope: the withheld tools go into the server's approval record (approvals.json), so a tool
   * that flips back to its approved text while the daemon is down stays withheld; `approve` writes a
   * new record without them. A failed write only loses that persistence, and says so.
   */
  private persistWithheld(name: string, tools: string[]): void {
    const record = this.opts.approvals.get(name);
    if (!record) return;
    // Withheld tools the server no longer lists stay withheld should they come back.
    const keep = (record.withheld ?? []).filter((t) => !tools.includes(t));
    this.opts.approvals
      .setWithheld(name, [...keep, ...tools])
      .catch((err: unknown) =>
        this.opts.logger.error(
          { err, server: name },
          'could not persist the withheld tools of a changed server; they are withheld until the daemon stops',
        ),
      );
  }

  private listsOf(name: string): OfferLists {
    return this.actors?.listsOf?.(name) ?? { prompts: [], resourceTemplates: [] };
  }

  private require(name: string): ServerEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new WardenError(ErrorCodes.UNKNOWN_SERVER, `no server named "${name}"`);
    return entry;
  }

  private actorsOrThrow(): ServerActorsPort {
    if (!this.actors) throw new WardenError(ErrorCodes.INTERNAL, 'the actor system is not running');
    return this.actors;
  }

  /** Runs `fn` after every earlier mutation finished (files and actors change in step). */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** A config mutation that may find nothing to do (it throws NO_CHANGE); true if it wrote. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the raw JSON document, as ConfigUpdater
  private async updateIfChanged(mutate: (raw: any) => void): Promise<boolean> {
    try {
      await this.opts.updateConfig(mutate);
      return true;
    } catch (err) {
      if (err === NO_CHANGE) return false;
      throw err;
    }
  }

  /** Sets a boolean flag of a server in the config file; no write when it already has that value. */
  private persistFlag(name: string, key: 'disabled' | 'quarantined', value: boolean): Promise<boolean> {
    return this.updateIfChanged((raw) => {
      const servers = raw?.mcpServers;
      const entry = servers && typeof servers === 'object' && Object.hasOwn(servers, name) ? servers[name] : undefined;
      if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
        throw new WardenError(
          ErrorCodes.UNKNOWN_SERVER,
          `server "${name}" is not in the config file ${this.opts.configPath} (was the file edited by hand?)`,
        );
      }
      if ((entry[key] === true) === value) throw NO_CHANGE;
      entry[key] = value;
    });
  }

  private async restoreApproval(name: string, previous: ServerApproval | undefined): Promise<void> {
    try {
      if (previous) await this.opts.approvals.set(name, previous);
      else await this.opts.approvals.delete(name);
    } catch (err) {
      // The server stays quarantined in the config file, so an extra approval record grants nothing.
      this.opts.logger.error({ err, server: name }, 'could not undo an approval after the config write failed');
    }
  }
}

/** Two validated entries mean the same server (key order aside). */
function sameEntry(a: ServerEntry, b: ServerEntry): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, value: unknown) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : value,
  );
}

/**
 * How a tool list differs from a record: its diff, plus the tools the record says were withheld
 * after a change (tool scope) that now look approved again — a flip back does not undo a change.
 */
function changesAgainst(record: ServerApproval, tools: UpstreamToolInfo[]): ToolChange[] {
  const changes = diffTools(tools, record.tools);
  for (const name of record.withheld ?? []) {
    if (changes.some((c) => c.tool === name) || !tools.some((t) => t.name === name)) continue;
    changes.push({
      tool: name,
      kind: 'changed',
      fields: [],
      summary: `tool "${name}" changed after its approval and is withheld until a person approves it (it shows the approved text again)`,
    });
  }
  return changes;
}

/** Prompt and template changes against a record (one from before they were recorded: every item is new). */
function offerChanges(record: ServerApproval, lists: OfferLists): ToolChange[] {
  return [
    ...diffItems('prompt', lists.prompts, record.prompts ?? {}),
    ...diffItems('resourceTemplate', lists.resourceTemplates, record.resourceTemplates ?? {}),
  ];
}

/** Everything offered, as unapproved (no record stands). */
function allNew(tools: UpstreamToolInfo[], lists: OfferedLists): ToolChange[] {
  return [
    ...diffTools(tools, {}),
    ...diffItems('prompt', lists.prompts ?? [], {}),
    ...diffItems('resourceTemplate', lists.resourceTemplates ?? [], {}),
  ];
}

/** A record of everything offered; a list whose fetch failed is not recorded (the next check records or compares it). */
function approvalOf(tools: UpstreamToolInfo[], lists: OfferedLists, by: ServerApproval['by']): ServerApproval {
  return {
    approvedAt: new Date().toISOString(),
    by,
    tools: Object.fromEntries(tools.map((t) => [t.name, approvedToolOf(t)])),
    ...(lists.prompts ? { prompts: approvedItemsOf('prompt', lists.prompts) } : {}),
    ...(lists.resourceTemplates ? { resourceTemplates: approvedItemsOf('resourceTemplate', lists.resourceTemplates) } : {}),
  };
}

const clipHash = (h: string) => (h.length > 12 ? `${h.slice(0, 12)}…` : h || '(none)');
