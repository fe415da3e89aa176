/**
 * Serves the visualizer (the web page of `mcp-warden ui`) from the daemon's HTTP server:
 *
 *   GET /           visualizer/static/index.html   (from the package's source tree)
 *   GET /app.css    visualizer/static/app.css
 *   GET /<name>.js  dist/visualizer/<name>.js      (compiled by `tsc -p visualizer`, part of `npm run build`)
 *
 * Only an explicit list of exact paths is routed (the http server matches paths exactly), so no
 * request can name any other file: there is no path joining with request input, hence no directory
 * traversal. The scripts are the `*.js` files found in dist/visualizer when the daemon starts, plus
 * `/app.js` always (answered with 503 and a hint while the page has not been built).
 *
 * The page holds no secret: the control token travels in the URL fragment (`#token=…`, which browsers
 * never send), and the page talks to the daemon only over the control channel (/ws). Responses carry
 * `Cache-Control: no-cache` with an ETag (revalidated on every load, 304 when unchanged: the names are
 * not content-hashed, so a daemon upgrade must never be hidden behind a stale cache), a strict
 * Content-Security-Policy (own scripts and styles only; connections to this origin's WebSocket),
 * `Referrer-Policy: no-referrer` and `nosniff`. Host headers are checked like the control channel does
 * (DNS rebinding): a loopback-bound daemon answers only to its loopback names.
 */
import { createHash } from 'node:crypto';
import { readdirSync, promises as fs } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { sendError, type HttpServerHandle } from './http-server.js';
import { packageRoot } from '../../core/package-root.js';
import { checkHostHeader, isLoopbackHost, loopbackAllowedHosts } from './request-guards.js';

const PACKAGE_ROOT = packageRoot();

const VISUALIZER_STATIC_DIR = join(PACKAGE_ROOT, 'visualizer', 'static');
const VISUALIZER_SCRIPT_DIR = join(PACKAGE_ROOT, 'dist', 'visualizer');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

/** A module file name we are willing to route: lower-case words and dashes, `.js`. */
const SCRIPT_NAME = /^[a-z0-9][a-z0-9-]{0,63}\.js$/;

export interface VisualizerOptions {
  logger: Logger;
  /** Host header values accepted; default: the loopback names for a loopback bind, any for a remote one. */
  allowedHosts?: readonly string[];
  /** Overrides for tests. */
  staticDir?: string;
  scriptDir?: string;
}

interface Cached {
  mtimeMs: number;
  size: number;
  body: Buffer;
  etag: string;
}

function contentTypeOf(file: string): string {
  const dot = file.lastIndexOf('.');
  return CONTENT_TYPES[file.slice(dot)] ?? 'application/octet-stream';
}

/** `ws://host` for the CSP, from a Host header that already passed checkHostHeader. */
function wsSourceOf(host: string | undefined): string {
  return host && /^[A-Za-z0-9.:[\]-]{1,300}$/.test(host) ? ` ws://${host}` : '';
}

/** Registers GET and HEAD routes for every visualizer file; returns the routed paths. */
export function registerVisualizer(http: HttpServerHandle, opts: VisualizerOptions): string[] {
  const staticDir = opts.staticDir ?? VISUALIZER_STATIC_DIR;
  const scriptDir = opts.scriptDir ?? VISUALIZER_SCRIPT_DIR;
  const allowedHosts = opts.allowedHosts ?? (isLoopbackHost(http.host) ? loopbackAllowedHosts(http.port) : ['*']);
  const cache = new Map<string, Cached>();

  const files = new Map<string, string>([
    ['/', join(staticDir, 'index.html')],
    ['/app.css', join(staticDir, 'app.css')],
    ['/app.js', join(scriptDir, 'app.js')],
  ]);
  let scripts: string[] = [];
  try {
    scripts = readdirSync(scriptDir).filter((n) => SCRIPT_NAME.test(n));
  } catch {
    opts.logger.warn({ dir: scriptDir }, 'visualizer scripts not built (run npm run build); the page will say so');
  }
  for (const name of scripts) files.set(`/${name}`, join(scriptDir, name));

  async function load(file: string): Promise<Cached | undefined> {
    let st;
    try {
      st = await fs.stat(file);
    } catch {
      return undefined;
    }
    const hit = cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    const body = await fs.readFile(file);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    const entry = { mtimeMs: st.mtimeMs, size: st.size, body, etag };
    cache.set(file, entry);
    return entry;
  }

  const serve = (file: string) => async (req: IncomingMessage, res: ServerResponse) => {
    const host = req.headers.host;
    if (!checkHostHeader(host, allowedHosts)) {
      return sendError(res, 403, 'E_FORBIDDEN_HOST', 'Forbidden: unexpected Host header');
    }
    const entry = await load(file);
    if (!entry) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`the visualizer is not built: ${file} is missing (run "npm run build")\n`);
      return;
    }
    const headers: Record<string, string> = {
      'content-type': contentTypeOf(file),
      'cache-control': 'no-cache',
      etag: entry.etag,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    if (file.endsWith('.html')) {
      headers['content-security-policy'] =
        `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; ` +
        `connect-src 'self'${wsSourceOf(host)}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
      headers['x-frame-options'] = 'DENY';
    }
    const inm = req.headers['if-none-match'];
    if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === entry.etag)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers['content-length'] = String(entry.body.length);
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : entry.body);
  };

  for (const [path, file] of files) {
    http.route('GET', path, serve(file));
    http.route('HEAD', path, serve(file));
  }
  return [...files.keys()];
}
