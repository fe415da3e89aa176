/** The `--listen` address of `serve` and `stdio` (shared here so commands need not import main.ts). */
import { DEFAULT_HOST } from '../core/defaults.js';

/** `HOST:PORT`, `[::1]:PORT`, `:PORT` or `PORT`. */
export function parseListenAddress(value: string): { host: string; port: number } {
  let host = DEFAULT_HOST;
  let portText = value;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(value);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (value.includes(':')) {
    const i = value.lastIndexOf(':');
    host = value.slice(0, i) || DEFAULT_HOST;
    portText = value.slice(i + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new Error(`--listen: expected HOST:PORT with a port from 0 to 65535, got "${value}"`);
  }
  return { host, port };
}
