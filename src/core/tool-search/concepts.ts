/**
 * A small, general table of concept groups for tool search: words and phrases people use for the
 * same action or thing when they talk to an assistant, grouped by meaning. A query word in a group
 * matches tools whose own text has another word of that group (tool-search-index.ts gives such
 * matches less weight than shared words). The groups describe common tool domains (messaging,
 * files, code hosting, browsers, maps, memory, web search, ...), not particular tools or queries:
 * add a group when a whole family of requests is missed, never a word to fix one query.
 * Pure module.
 */
import { stem, words } from './tool-terms.js';

const GROUPS: readonly string[] = [
  // ---- actions
  'create, make, new, add, start, set up, open, initialize, generate, build',
  'delete, remove, erase, drop, destroy, forget, purge, discard, wipe, clear',
  'read, get, fetch, retrieve, load, show, view, display, see, inspect, open, look at',
  'write, save, store, persist, put, record, keep, dump, remember, memorize, jot down, note down',
  'edit, modify, change, update, patch, alter, revise, amend, tweak, fix',
  'search, find, lookup, look up, query, locate, seek, discover, hunt',
  'list, enumerate, all, browse, index, overview, inventory, catalog',
  'send, post, message, notify, ping, tell, dm, broadcast, announce, say, shout',
  'reply, respond, answer, follow up, thread, conversation',
  'copy, fork, duplicate, clone, mirror',
  'move, rename, relocate, transfer, mv',
  'merge, combine, integrate, land, join',
  'run, execute, eval, evaluate, invoke, script, snippet, javascript, js, code',
  'wait, pause, sleep, until, delay, hold on',
  'close, shut, quit, exit, dismiss',
  'upload, attach, provide file, choose file',
  'compress, zip, gzip, archive, shrink, pack, deflate',
  'calculate, compute, sum, add up, total, arithmetic, plus, math',
  'repeat, echo, say back, mirror back, parrot',
  'remember, memorize, note, recall, memory, knowledge, know',
  'think, reason, reflect, plan, ponder, deliberate, step by step, chain of thought, problem solving',
  'approve, review, accept, sign off, lgtm, feedback, go ahead, green light, okay',
  'comment, remark, note, reply, feedback',
  'react, reaction, emoji, thumbs up, like, emoticon',
  'click, press, tap, push, hit, select, choose',
  'type, enter, fill, input, fill in, key in, write into',
  'hover, mouse over, point at',
  'drag, drop, drag and drop',
  'navigate, go, visit, open url, load url, browse to, go to',
  'back, previous, return, history',
  'resize, window size, viewport, dimensions',
  // ---- things
  'chat, slack, team chat, channel, room, workspace, conversation, team, company, staff, everyone',
  'person, people, user, member, colleague, teammate, coworker, employee, everyone, somebody, someone, who, account, profile',
  'file, document, doc, text, content, contents, source, disk, readme',
  'folder, directory, dir, path, tree, hierarchy',
  'repository, repo, project, codebase, git',
  'issue, bug, ticket, problem, defect, task, report',
  'pull request, pr, merge request, mr, patch, change, changes, diff, contribution, proposal, propose',
  'commit, revision, changeset, history, log',
  'branch, head, ref',
  'web, internet, online, site, website, google, net',
  'browser, page, web page, site, tab, website, chrome, playwright, puppeteer',
  'screenshot, capture, snapshot, picture, image, photo, screen grab, look like',
  'form, field, input, textbox, box, login, username, password',
  'dialog, popup, pop up, alert, confirm, confirmation, modal, prompt',
  'console, log, logs, error, errors, print, output',
  'network, request, http, traffic, api call, xhr, fetch, call',
  'keyboard, key, keystroke, hotkey, shortcut',
  'address, location, place, position, gps, coordinates, latitude, longitude, lat, lng, where, street, road, avenue, city',
  'geocode, coordinates, position, latitude, longitude, gps',
  'directions, route, navigation, way, get to, drive, driving, walk, walking, trip, travel, commute',
  'distance, far, how long, travel time, duration, eta',
  'elevation, altitude, height, high, above sea level, mountain',
  'restaurant, business, shop, store, cafe, bar, nearby, local, near me, around',
  'entity, node, thing, item, object, concept',
  'relation, relationship, link, connection, connect, associate, between',
  'observation, fact, note, detail, attribute, property',
  'graph, knowledge graph, memory, everything you know',
  'size, bytes, big, large, metadata, info, information, details, modified, created, permissions',
  'environment, env, variables, settings, configuration, config',
  'status, check, checks, ci, build, pipeline, passing, pass, fail, green, red',
  'dark mode, color scheme, theme, media, light mode, prefers',
  'recent, latest, lately, new, last',
  'user profile, bio, profile, about, details',
];

/** Concept id tokens: letters only, never a real word ("zconcept" + letters), so they never meet text terms. */
function idOf(i: number): string {
  let s = '';
  let n = i;
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26);
  } while (n > 0);
  return `zconcept${s}`;
}

interface Member {
  /** Stemmed words of the member phrase. */
  seq: string[];
  concept: string;
}

/** Members by their first stemmed word. */
const BY_FIRST = new Map<string, Member[]>();
for (const [i, group] of GROUPS.entries()) {
  const concept = idOf(i);
  for (const phrase of group.split(',')) {
    const seq = words(phrase.trim()).map(stem);
    if (seq.length === 0) continue;
    const list = BY_FIRST.get(seq[0]!) ?? [];
    list.push({ seq, concept });
    BY_FIRST.set(seq[0]!, list);
  }
}

/** Stemmed single-word members of each concept (phrases are matched, but only single words expand a query). */
const WORDS_OF = new Map<string, string[]>();
for (const list of BY_FIRST.values()) {
  for (const m of list) {
    if (m.seq.length !== 1) continue;
    const ws = WORDS_OF.get(m.concept) ?? [];
    if (!ws.includes(m.seq[0]!)) ws.push(m.seq[0]!);
    WORDS_OF.set(m.concept, ws);
  }
}

/** The words of the concepts `text` mentions (stemmed), except `exclude`: a query's synonym expansion. */
export function relatedTerms(text: string, exclude: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const c of conceptsOf(text)) for (const w of WORDS_OF.get(c) ?? []) if (!exclude.has(w)) out.add(w);
  return [...out];
}

/** Concept ids of a text (each once, in order of first appearance), from its words and phrases. */
export function conceptsOf(text: string): string[] {
  const ws = words(text).map(stem);
  const out = new Set<string>();
  for (let i = 0; i < ws.length; i++) {
    for (const m of BY_FIRST.get(ws[i]!) ?? []) {
      if (m.seq.every((w, j) => ws[i + j] === w)) out.add(m.concept);
    }
  }
  return [...out];
}
