/**
 * Integrity of what a server offers besides tools: its prompts and resource templates, the other
 * lists whose text reaches a client or model as the upstream wrote it (src/daemon/supervisor-catalog.ts
 * serves them). Each item is fingerprinted whole, with the same canonical JSON as a tool
 * (src/core/tool-fingerprint.ts): a prompt's name, title, description, arguments, _meta, icons; a
 * template's uriTemplate, name, title, description, mimeType, annotations, _meta, icons — and any
 * field a later spec adds. Prompts are keyed by `name`, templates by `uriTemplate`.
 *
 * The offer fingerprint binds an approval to everything a person inspected: the tool-set
 * fingerprint alone when the server offers no prompts or templates (so it is unchanged for servers
 * that offer only tools), otherwise one over all three sorted lists.
 */
import { createHash } from 'node:crypto';
import { canonicalJson, fingerprintToolSet, type ApprovedTool, type ToolChange, type ToolLike } from './tool-fingerprint.js';

export type OfferItem = Record<string, unknown>;
export type OfferKind = 'prompt' | 'resourceTemplate';

/** A server's prompts and resource templates as the server actor holds them (checked lists). */
export interface OfferLists {
  prompts: OfferItem[];
  resourceTemplates: OfferItem[];
}

const KEY: Record<OfferKind, string> = { prompt: 'name', resourceTemplate: 'uriTemplate' };
const LABEL: Record<OfferKind, string> = { prompt: 'prompt', resourceTemplate: 'resource template' };

/** The key of an item (its name or uriTemplate); undefined for an item without one (never served). */
export function offerKeyOf(kind: OfferKind, item: OfferItem): string | undefined {
  const k = item[KEY[kind]];
  return typeof k === 'string' ? k : undefined;
}

/** Items with a key, first one per key (what is fingerprinted and what is served). */
export function keyedItems(kind: OfferKind, items: readonly OfferItem[]): OfferItem[] {
  const seen = new Set<string>();
  return items.filter((i) => {
    const k = offerKeyOf(kind, i);
    if (k === undefined || seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The approved records of a list, by key: the item as listed and its fingerprint (format of a tool's record). */
export function approvedItemsOf(kind: OfferKind, items: readonly OfferItem[]): Record<string, ApprovedTool> {
  return Object.fromEntries(
    keyedItems(kind, items).map((i) => [offerKeyOf(kind, i)!, { fingerprint: fingerprintItem(i), v: 2 as const, tool: { ...i } }]),
  );
}

export function fingerprintItem(item: OfferItem): string {
  return sha256(canonicalJson(item));
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const clip = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n)}…` : s);
const FIRST = ['title', 'description', 'arguments', 'mimeType', 'annotations', '_meta', 'icons'];
const rank = (f: string) => (FIRST.indexOf(f) < 0 ? FIRST.length : FIRST.indexOf(f));

/**
 * Compare a list with its approved records; removed items are not changes. The changes carry
 * `item` (so they never mix with a tool of the same name) and a summary naming the kind.
 */
export function diffItems(kind: OfferKind, items: readonly OfferItem[], approved: Record<string, ApprovedTool>): ToolChange[] {
  const changes: ToolChange[] = [];
  for (const item of keyedItems(kind, items)) {
    const key = offerKeyOf(kind, item)!;
    const a = Object.hasOwn(approved, key) ? approved[key] : undefined;
    if (!a) {
      changes.push({ tool: key, item: kind, kind: 'added', fields: [], summary: `new ${LABEL[kind]} "${key}" was not approved` });
      continue;
    }
    if (a.fingerprint === fingerprintItem(item)) continue;
    const before = a.tool ?? {};
    const fields = [...new Set([...Object.keys(before), ...Object.keys(item)])]
      .filter((f) => canonicalJson(before[f]) !== canonicalJson(item[f]))
      .sort((x, y) => rank(x) - rank(y) || (x < y ? -1 : x > y ? 1 : 0));
    const parts = fields.map((f) => `${f}: ${clip(canonicalJson(before[f]))} → ${clip(canonicalJson(item[f]))}`);
    changes.push({ tool: key, item: kind, kind: 'changed', fields, summary: `${LABEL[kind]} "${key}" changed: ${parts.join('; ')}` });
  }
  return changes;
}

const byKey = (kind: OfferKind) => (a: OfferItem, b: OfferItem) => {
  const x = offerKeyOf(kind, a) ?? '';
  const y = offerKeyOf(kind, b) ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
};

/** What an approval is bound to: tools, prompts and templates as shown (order-independent). */
export function fingerprintOffer(tools: readonly ToolLike[], lists: OfferLists): string {
  if (lists.prompts.length === 0 && lists.resourceTemplates.length === 0) return fingerprintToolSet(tools);
  return sha256(
    canonicalJson({
      tools: fingerprintToolSet(tools),
      prompts: [...lists.prompts].sort(byKey('prompt')),
      resourceTemplates: [...lists.resourceTemplates].sort(byKey('resourceTemplate')),
    }),
  );
}
