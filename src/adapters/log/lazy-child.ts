/**
 * A child logger that is made on its first line. Per upstream the daemon made three pino children at
 * start (server, process group, MCP client: 50–90 µs of CPU each, their bindings serialised up front),
 * while the process-group and client ones mostly only ever see debug lines, which the level drops.
 * A line below the parent's level is dropped without making the child; anything else (a line that is
 * written, `child()`, `level`, …) goes to the real child, made once. The child is the same pino child
 * as before, so its lines and its rate-limit source (source-rate-limit.ts) are unchanged.
 */
import type { Logger } from 'pino';

const LEVEL_METHODS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace']);
const noop = (): void => undefined;

export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  const real = (): Logger => (child ??= parent.child(bindings));
  return new Proxy({} as Logger, {
    get(_target, prop) {
      if (child === undefined && typeof prop === 'string' && LEVEL_METHODS.has(prop) && !parent.isLevelEnabled(prop)) return noop;
      const c = real();
      const value: unknown = Reflect.get(c, prop, c);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(c) : value;
    },
    set(_target, prop, value) {
      return Reflect.set(real(), prop, value);
    },
    has(_target, prop) {
      return Reflect.has(real(), prop);
    },
  });
}
