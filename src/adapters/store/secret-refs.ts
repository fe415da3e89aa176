/**
 * Secrets by reference (docs/config.md "Secrets"): `${env:NAME}` and `${file:PATH}` in a server's
 * `env`, `args`, `url`, `headers` (and `docker.env`) are expanded here, by the launch actor
 * (src/actors/launch-upstream.ts), right before the server starts. The expanded entry is used for
 * that one start and dropped: the registry and the config file keep the references, so secrets are
 * never written back, and nothing here logs a value. Errors name the field and the reference, never
 * a value.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { errnoOf } from '../../core/errno.js';
import type { ServerEntry } from '../../config/config-types.js';

const REF = /\$\{(env|file):([^}]*)\}/g;

export interface SecretContext {
  env: Readonly<Record<string, string | undefined>>;
  /** A relative `${file:…}` path is resolved against this directory (the config file's). */
  baseDir: string;
}

/**
 * The entry with every reference expanded. Rejects with E_SECRET_UNRESOLVED listing every reference
 * that could not be resolved (an unset variable, an unreadable file), each with its JSON path.
 */
export async function expandSecretRefs(name: string, entry: ServerEntry, ctx: SecretContext): Promise<ServerEntry> {
  const problems: string[] = [];
  const files = new Map<string, Promise<string>>();
  const readSecretFile = (p: string): Promise<string> => {
    const abs = path.resolve(ctx.baseDir, p);
    let pending = files.get(abs);
    if (!pending) {
      pending = readFile(abs, 'utf8').then((t) => t.trim());
      files.set(abs, pending);
    }
    return pending;
  };
  const expand = async (value: string, at: string): Promise<string> => {
    if (!value.includes('${')) return value;
    let out = '';
    let last = 0;
    for (const m of value.matchAll(REF)) {
      out += value.slice(last, m.index);
      last = m.index + m[0].length;
      const [, kind, ref] = m as unknown as [string, 'env' | 'file', string];
      if (ref === '') {
        problems.push(`${at}: \${${kind}:} names nothing`);
        continue;
      }
      if (kind === 'env') {
        const v = ctx.env[ref];
        if (v === undefined) problems.push(`${at}: environment variable ${ref} is not set`);
        else out += v;
      } else {
        try {
          out += await readSecretFile(ref);
        } catch (err) {
          problems.push(`${at}: cannot read file ${ref}: ${errnoOf(err) ?? (err as Error).message}`);
        }
      }
    }
    return out + value.slice(last);
  };
  const expandRecord = async (rec: Record<string, string>, at: string): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(rec)) out[k] = await expand(v, `${at}.${k}`);
    return out;
  };
  const base = `$.mcpServers.${name}`;
  const next: ServerEntry = { ...entry, env: await expandRecord(entry.env, `${base}.env`) };
  next.args = [];
  for (const [i, a] of entry.args.entries()) next.args.push(await expand(a, `${base}.args[${i}]`));
  if (entry.url !== undefined) next.url = await expand(entry.url, `${base}.url`);
  if (entry.headers) next.headers = await expandRecord(entry.headers, `${base}.headers`);
  if (entry.docker) next.docker = { ...entry.docker, env: await expandRecord(entry.docker.env, `${base}.docker.env`) };
  if (problems.length > 0) {
    throw new WardenError(
      ErrorCodes.SECRET_UNRESOLVED,
      `server "${name}" not started: ${problems.length === 1 ? 'a secret reference' : `${problems.length} secret references`} could not be resolved: ${problems.join('; ')}`,
      { server: name },
    );
  }
  return next;
}
