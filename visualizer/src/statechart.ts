/**
 * Draws the server statechart from its definition (the snapshot's `machine`, xstate `toJSON()` plus
 * eventless transitions) as nested boxes: a compound state is a box holding its children, every box
 * lists its outgoing transitions (`EVENT [guard] → target / actions`; a sibling target by its name, any
 * other by its full path; those that stay in the state on one `↺` line), the initial child of a compound
 * state is marked with ●→, a final state has a double border. `setActive(path)` highlights the live
 * state and its ancestors and outlines (dashed) every state it can go to next; hovering a transition
 * line draws that transition's arrow (an SVG overlay) and outlines its target.
 */
import { h, replaceChildren, svg } from './dom.js';
import { stateClass } from './format.js';
import type { MachineNodeJson, TransitionJson } from './types.js';

interface NodeInfo {
  path: string;
  node: MachineNodeJson;
  box: HTMLElement;
  parent?: NodeInfo;
  transitions: TransitionJson[];
}

/** `#server.starting.check` → `starting.check` (relative to the machine's id). */
function targetPath(machineId: string, target: string): string {
  const t = target.startsWith('#') ? target.slice(1) : target;
  if (t === machineId) return '';
  return t.startsWith(`${machineId}.`) ? t.slice(machineId.length + 1) : t;
}

/** A readable event name: `done: launch`, `error: audit`, `after initTimeout`, `always`. */
function eventLabel(t: TransitionJson): string {
  const e = t.eventType ?? '';
  if (e === '') return 'always';
  let m = /^xstate\.done\.actor\.(.+)$/.exec(e);
  if (m) return `done: ${m[1]}`;
  m = /^xstate\.error\.actor\.(.+)$/.exec(e);
  if (m) return `error: ${m[1]}`;
  if (e.startsWith('xstate.after.')) {
    if (typeof t.delay === 'number') return `after ${t.delay} ms`;
    if (typeof t.delay === 'string') return `after ${t.delay}`;
    return `after ${e.slice('xstate.after.'.length).split('.')[0]}`;
  }
  return e;
}

function guardLabel(t: TransitionJson): string | undefined {
  const g = t.guard;
  if (!g) return undefined;
  if (typeof g === 'string') return g;
  return typeof g.type === 'string' ? g.type : 'guard';
}

function actionLabels(t: TransitionJson): string[] {
  return (t.actions ?? [])
    .map((a) => (typeof a === 'string' ? a : typeof a?.type === 'string' ? a.type : ''))
    .filter((a) => a !== '' && !a.startsWith('xstate.'));
}

function shortName(path: string): string {
  return path === '' ? '(root)' : path;
}

/** A sibling target by its key (`launching` from `starting.check`), anything else by its full path. */
function relativeName(source: string, target: string): string {
  const parentOf = (p: string) => (p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '');
  if (target !== '' && source !== '' && parentOf(source) === parentOf(target)) return target.slice(target.lastIndexOf('.') + 1);
  return shortName(target);
}

export class Statechart {
  private readonly root: HTMLElement;
  private readonly body: HTMLElement;
  private readonly overlay: SVGSVGElement;
  private machineId = '';
  private nodes = new Map<string, NodeInfo>();
  private active: string | null = null;
  private hoverArrow: { from: string; to: string } | null = null;
  private frame = 0;

  constructor(container: HTMLElement) {
    this.root = container;
    this.body = h('div', { class: 'chart-body' });
    this.overlay = svg('svg', { class: 'chart-arrows', 'aria-hidden': 'true' });
    replaceChildren(this.root, this.body);
    const ro = new ResizeObserver(() => this.scheduleArrows());
    ro.observe(this.body);
  }

  /** (Re)builds the boxes from a machine definition. */
  setMachine(def: MachineNodeJson): void {
    this.machineId = def.id;
    this.nodes.clear();
    const tree = this.build(def, '', undefined);
    replaceChildren(this.body, tree, this.overlay);
    this.applyActive();
  }

  /** Highlights `path` (a dotted state path; null or an unknown path highlights nothing). */
  setActive(path: string | null): void {
    this.active = path;
    this.applyActive();
  }

  /** The state paths drawn, e.g. ['', 'starting', 'starting.check', …]. */
  paths(): string[] {
    return [...this.nodes.keys()];
  }

  private build(node: MachineNodeJson, path: string, parent: NodeInfo | undefined): HTMLElement {
    const children = Object.values(node.states ?? {});
    const transitions = [...(node.always ?? []), ...(node.transitions ?? [])];
    const isInitial =
      parent !== undefined &&
      parent.node.initial?.target?.[0] !== undefined &&
      targetPath(this.machineId, parent.node.initial.target[0]) === path;
    const key = node.key;
    const top = path.split('.')[0] ?? '';
    const box = h('section', {
      class: `st st-${node.type} ${path === '' ? 'st-root' : stateClass(top === 'starting' || top === 'reaping' ? path : top)}`,
      'data-path': path,
      'aria-label': `state ${shortName(path)}`,
    });
    const info: NodeInfo = { path, node, box, parent, transitions };
    this.nodes.set(path, info);

    const invokes = (node.invoke ?? []).map((i) => i.src ?? i.id).filter((s): s is string => typeof s === 'string');
    const header = h(
      'header',
      { class: 'st-head' },
      isInitial ? h('span', { class: 'st-initial', title: 'initial state' }, '●→') : null,
      h('span', { class: 'st-name' }, key),
      node.type === 'final' ? h('span', { class: 'st-tag' }, 'final') : null,
      invokes.length ? h('span', { class: 'st-invoke', title: 'actor invoked while in this state' }, `runs ${invokes.join(', ')}`) : null,
    );
    box.appendChild(header);

    const list = h('ul', { class: 'st-trans' });
    const internals: HTMLElement[] = [];
    for (const t of transitions) {
      const targets = (t.target ?? []).map((x) => targetPath(this.machineId, x));
      const guard = guardLabel(t);
      const actions = actionLabels(t);
      const title = [
        targets.length
          ? `${eventLabel(t)}: goes to ${targets.map(shortName).join(', ')}`
          : `${eventLabel(t)}: handled here without leaving the state`,
        guard ? `only if ${guard}` : '',
        actions.length ? `actions: ${actions.join(', ')}` : '',
      ]
        .filter(Boolean)
        .join('; ');
      const parts = [h('span', { class: 'st-ev' }, eventLabel(t)), guard ? h('span', { class: 'st-guard' }, ` [${guard}]`) : null];
      const actionsEl = actions.length ? h('span', { class: 'st-actions' }, ` / ${actions.join(', ')}`) : null;
      if (targets.length === 0) {
        // Transitions that do not leave the state share one line: ↺ APPROVE, QUARANTINE
        internals.push(h('span', { class: 'st-int', title }, parts, actionsEl));
        continue;
      }
      const li = h(
        'li',
        { class: 'st-t', title },
        parts,
        h('span', { class: 'st-arrow' }, ' → '),
        h('span', { class: 'st-target' }, targets.map((x) => relativeName(path, x)).join(', ')),
        actionsEl,
      );
      li.addEventListener('mouseenter', () => {
        this.hoverArrow = { from: path, to: targets[0]! };
        this.highlightTarget(targets[0]!, true);
        this.scheduleArrows();
      });
      li.addEventListener('mouseleave', () => {
        this.hoverArrow = null;
        this.highlightTarget(targets[0]!, false);
        this.scheduleArrows();
      });
      list.appendChild(li);
    }
    if (internals.length) {
      const li = h(
        'li',
        { class: 'st-t st-t-internal', title: 'events handled here without leaving the state' },
        h('span', { class: 'st-arrow' }, '↺ '),
      );
      internals.forEach((el, i) => {
        if (i > 0) li.appendChild(document.createTextNode(', '));
        li.appendChild(el);
      });
      list.appendChild(li);
    }
    if (transitions.length) box.appendChild(list);

    if (children.length) {
      const inner = h('div', { class: 'st-children' });
      for (const c of children) inner.appendChild(this.build(c, path === '' ? c.key : `${path}.${c.key}`, info));
      box.appendChild(inner);
    }
    return box;
  }

  private highlightTarget(path: string, on: boolean): void {
    this.nodes.get(path)?.box.classList.toggle('st-hover-target', on);
  }

  private applyActive(): void {
    for (const n of this.nodes.values()) n.box.classList.remove('st-active', 'st-active-ancestor', 'st-next');
    const info = this.active !== null ? this.nodes.get(this.active) : undefined;
    if (info) {
      info.box.classList.add('st-active');
      for (let p = info.parent; p && p.path !== ''; p = p.parent) p.box.classList.add('st-active-ancestor');
      for (const to of this.nextTargets(info)) this.nodes.get(to)?.box.classList.add('st-next');
    }
    this.scheduleArrows();
  }

  /** Where the active state can go: its own transitions and its ancestors'. */
  private nextTargets(info: NodeInfo): string[] {
    const out = new Set<string>();
    for (let n: NodeInfo | undefined = info; n; n = n.parent) {
      for (const t of n.transitions) for (const x of t.target ?? []) out.add(targetPath(this.machineId, x));
    }
    out.delete(info.path);
    return [...out];
  }

  private scheduleArrows(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.drawArrows();
    });
  }

  private drawArrows(): void {
    const base = this.body.getBoundingClientRect();
    this.overlay.setAttribute('width', String(this.body.scrollWidth));
    this.overlay.setAttribute('height', String(this.body.scrollHeight));
    const defs = svg(
      'defs',
      null,
      svg(
        'marker',
        { id: 'arrowhead', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' },
        svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }),
      ),
    );
    const paths: SVGElement[] = [];
    const pairs: Array<{ from: string; to: string; cls: string }> = [];
    // One arrow at a time (the hovered transition): the targets of the live state are outlined instead,
    // since arrows from one box to many cross the boxes in between.
    if (this.hoverArrow) pairs.push({ ...this.hoverArrow, cls: 'arrow arrow-hover' });
    for (const { from, to, cls } of pairs) {
      const a = this.nodes.get(from)?.box;
      const b = this.nodes.get(to)?.box;
      if (!a || !b || a.offsetParent === null) continue;
      const d = arrowPath(rel(a.getBoundingClientRect(), base, this.body), rel(b.getBoundingClientRect(), base, this.body));
      if (d) paths.push(svg('path', { d, class: cls, 'marker-end': 'url(#arrowhead)' }));
    }
    replaceChildren(this.overlay, defs, paths);
  }
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function rel(r: DOMRect, base: DOMRect, scroller: HTMLElement): Box {
  return { x: r.left - base.left + scroller.scrollLeft, y: r.top - base.top + scroller.scrollTop, w: r.width, h: r.height };
}

function contains(outer: Box, inner: Box): boolean {
  return inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.w <= outer.x + outer.w && inner.y + inner.h <= outer.y + outer.h;
}

/** The point where the ray from the centre of `b` towards (tx,ty) leaves `b`. */
function edgePoint(b: Box, tx: number, ty: number): [number, number] {
  const cx = b.x + b.w / 2;
  const cy = b.y + b.h / 2;
  const dx = tx - cx;
  const dy = ty - cy;
  if (dx === 0 && dy === 0) return [cx, cy];
  const sx = dx !== 0 ? b.w / 2 / Math.abs(dx) : Infinity;
  const sy = dy !== 0 ? b.h / 2 / Math.abs(dy) : Infinity;
  const s = Math.min(sx, sy);
  return [cx + dx * s, cy + dy * s];
}

/** A gently curved path from box a to box b (or to the header of b when a lies inside b). */
function arrowPath(a: Box, b: Box): string | undefined {
  if (contains(b, a)) {
    // Into an enclosing state: from a's top to b's header.
    const x1 = a.x + a.w / 2;
    const y1 = a.y;
    const x2 = b.x + 24;
    const y2 = b.y + 10;
    return `M${x1},${y1} C${x1},${y2} ${x2 + 40},${y2} ${x2},${y2}`;
  }
  const acx = a.x + a.w / 2;
  const acy = a.y + a.h / 2;
  const bcx = b.x + b.w / 2;
  const bcy = b.y + b.h / 2;
  const [x1, y1] = edgePoint(a, bcx, bcy);
  const [x2, y2] = edgePoint(b, acx, acy);
  const mx = (x1 + x2) / 2;
  const my = (y1 + y2) / 2;
  const len = Math.hypot(x2 - x1, y2 - y1);
  if (len < 4) return undefined;
  // Bend sideways by a tenth of the length so arrows in both directions do not overlap.
  const nx = -(y2 - y1) / len;
  const ny = (x2 - x1) / len;
  const bend = Math.min(40, len / 10);
  return `M${x1.toFixed(1)},${y1.toFixed(1)} Q${(mx + nx * bend).toFixed(1)},${(my + ny * bend).toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`;
}
