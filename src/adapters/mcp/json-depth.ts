/**
 * Nesting depth of a parsed JSON value, checked without recursion: JSON.parse accepts any depth, but
 * JSON.stringify (forwarding a request upstream) and every recursive walk overflow the stack at a few
 * thousand levels ("Maximum call stack size exceeded"), so /mcp refuses deeper bodies up front.
 */

/** True when `value` has objects/arrays nested more than `maxDepth` levels deep (a scalar is depth 0). */
export function jsonDepthExceeds(value: unknown, maxDepth: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  const stack: Array<{ v: object; depth: number }> = [{ v: value, depth: 1 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (depth > maxDepth) return true;
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const c of children) if (c !== null && typeof c === 'object') stack.push({ v: c as object, depth: depth + 1 });
  }
  return false;
}

/**
 * False when the JSON text `buf` cannot nest more than `maxDepth` levels: it has at most `maxDepth`
 * opening brackets (each level opens one; brackets inside strings only make this an over-count). A
 * byte count is far cheaper than walking the parsed value, which every typical request would pass.
 */
export function mayNestDeeperThan(buf: Uint8Array, maxDepth: number): boolean {
  if (buf.length <= maxDepth) return false;
  let open = 0;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i];
    if ((b === 0x7b || b === 0x5b) && ++open > maxDepth) return true; // '{' '['
  }
  return false;
}
