/**
 * Loaded with `node --import` into peers that have no bind-address option (mcp-hub, supergateway):
 * every `net.Server#listen` that names no host, or a wildcard one, binds 127.0.0.1 instead. The bench
 * never opens a port beyond loopback.
 */
import net from 'node:net';

const LOOPBACK = '127.0.0.1';
const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);
const original = net.Server.prototype.listen;

function patched(this: net.Server, ...args: unknown[]): net.Server {
  const first = args[0];
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    const second = args[1];
    if (typeof second === 'string') {
      if (WILDCARD.has(second)) args[1] = LOOPBACK;
    } else {
      args.splice(1, 0, LOOPBACK);
    }
  } else if (first === undefined || typeof first === 'function') {
    args.unshift(0, LOOPBACK);
  } else if (typeof first === 'object' && first !== null && !('fd' in first) && !('path' in first) && !('_handle' in first)) {
    const o = first as net.ListenOptions;
    if (o.host === undefined || WILDCARD.has(o.host)) args[0] = { ...o, host: LOOPBACK };
  }
  return (original as (...a: unknown[]) => net.Server).apply(this, args);
}

net.Server.prototype.listen = patched as typeof net.Server.prototype.listen;
