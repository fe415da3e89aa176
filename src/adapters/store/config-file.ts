/**
 * Config file I/O: load + validate, first-run creation, crash-safe atomic rewrite, and serialized
 * read-modify-write updates. Validation itself lives in src/config/config-schema.ts.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, mkdir, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { parseConfig, parseJsonText } from '../../config/config-schema.js';
import type { ConfigIssue, ConfigWarning, WardenConfig } from '../../config/config-types.js';
import { errnoOf } from '../../core/errno.js';

export interface LoadedConfig {
  config: WardenConfig;
  warnings: ConfigWarning[];
}

function ioError(action: 'read' | 'write' | 'create', file: string, err: unknown): WardenError {
  if (err instanceof WardenError) return err;
  const errno = errnoOf(err) ?? 'EUNKNOWN';
  const reason = err instanceof Error ? err.message : String(err);
  return new WardenError(ErrorCodes.CONFIG_UNREADABLE, `cannot ${action} config file ${file}: ${errno} (${reason})`, {
    file,
    errno,
  });
}

function invalid(file: string, issues: ConfigIssue[], extra: Record<string, unknown> = {}): WardenError {
  const n = issues.length;
  const lines = [`invalid config file ${file} (${n} ${n === 1 ? 'problem' : 'problems'}):`];
  for (const i of issues) lines.push(`  ${i.path}: ${i.message}`);
  return new WardenError(ErrorCodes.CONFIG_INVALID, lines.join('\n'), { file, issues, ...extra });
}

/** Reads the file; throws CONFIG_UNREADABLE on I/O errors. */
async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw ioError('read', file, err);
  }
}

/** Parses JSON text; throws CONFIG_INVALID with line/column on a syntax error. */
function parseJsonOrThrow(file: string, text: string): { value: unknown; warnings: ConfigWarning[] } {
  const r = parseJsonText(text);
  if (!r.ok) {
    throw invalid(file, [{ path: '$', message: `invalid JSON at line ${r.line}, column ${r.column}: ${r.message}` }], {
      line: r.line,
      column: r.column,
    });
  }
  return { value: r.value, warnings: r.warnings };
}

function validateOrThrow(file: string, value: unknown, jsonWarnings: ConfigWarning[]): LoadedConfig {
  const r = parseConfig(value, { baseDir: path.dirname(file) });
  if (!r.ok) throw invalid(file, r.issues, { warnings: [...jsonWarnings, ...r.warnings] });
  return { config: r.config, warnings: [...jsonWarnings, ...r.warnings] };
}

/**
 * Loads and validates a config file. Relative `cwd` values are resolved against the file's
 * directory. Throws WardenError CONFIG_UNREADABLE (I/O; detail `{ file, errno }`) or CONFIG_INVALID
 * (detail `{ file, issues }`; the message names the file on its first line and lists one issue per line).
 */
export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  const abs = path.resolve(file);
  const text = await readText(abs);
  const { value, warnings } = parseJsonOrThrow(abs, text);
  return validateOrThrow(abs, value, warnings);
}

function serialize(obj: unknown): string {
  const s = JSON.stringify(obj, null, 2);
  if (typeof s !== 'string') throw new TypeError('config is not JSON-serializable');
  return s + '\n';
}

function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Writes `data` to a new file (exclusive create) and fsyncs it. */
async function writeNewFile(file: string, data: string, mode: number): Promise<void> {
  const fh = await open(file, 'wx', mode);
  try {
    await fh.chmod(mode); // the umask may have narrowed it; make it exactly `mode`
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory so a rename/link in it is durable. Best effort where unsupported. */
async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, fsConstants.O_RDONLY | (fsConstants.O_DIRECTORY ?? 0));
    await fh.sync();
  } catch (err) {
    const code = errnoOf(err);
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await fh?.close();
  }
}

/**
 * Creates the config file with `makeDefault()` only if it does not exist yet. The parent directory
 * is created (mode 0700) if missing; the file is created with mode 0600 since it may hold secrets.
 * Race-safe: the content is written to a temp file and hard-linked into place, which fails if the
 * file appeared meanwhile, so a concurrent start never clobbers or sees a half-written file
 * (falls back to an exclusive `wx` create where hard links are unsupported).
 */
export async function ensureConfigFile(file: string, makeDefault: () => object): Promise<{ created: boolean }> {
  const abs = path.resolve(file);
  const dir = path.dirname(abs);
  try {
    await stat(abs);
    return { created: false };
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw ioError('read', abs, err);
  }
  let data: string;
  try {
    data = serialize(makeDefault());
  } catch (err) {
    throw ioError('create', abs, err);
  }
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = tempPathFor(abs);
    await writeNewFile(tmp, data, 0o600);
    try {
      await link(tmp, abs);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'EEXIST') return { created: false };
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'ENOSYS') throw err;
      // No hard links on this filesystem: exclusive create directly.
      try {
        await writeNewFile(abs, data, 0o600);
      } catch (err2) {
        if (errnoOf(err2) === 'EEXIST') return { created: false };
        throw err2;
      }
    } finally {
      await unlink(tmp).catch(() => {});
    }
    await syncDir(dir);
    return { created: true };
  } catch (err) {
    throw ioError('create', abs, err);
  }
}

/** Test seam for writeConfigAtomic: called after the temp file is complete and synced, before the rename. */
export interface AtomicWriteHooks {
  beforeRename?: (tempPath: string) => void | Promise<void>;
}

/**
 * Replaces the file's content atomically: writes a temp file in the same directory, fsyncs it,
 * renames it over the target and fsyncs the directory. A crash at any point leaves either the old or
 * the new content, never a mix; on failure the temp file is removed. If the target is a symlink the
 * file it points to is replaced (the link is kept). The file keeps its permission bits (new: 0600).
 * Throws CONFIG_UNREADABLE on I/O errors.
 */
export async function writeConfigAtomic(file: string, obj: unknown, hooks: AtomicWriteHooks = {}): Promise<void> {
  const abs = path.resolve(file);
  let data: string;
  try {
    data = serialize(obj);
  } catch (err) {
    throw ioError('write', abs, err);
  }
  const target = await realpath(abs).catch(() => abs);
  let tmp: string | undefined;
  try {
    let mode = 0o600;
    try {
      mode = (await stat(target)).mode & 0o777;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
    tmp = tempPathFor(target);
    await writeNewFile(tmp, data, mode);
    await hooks.beforeRename?.(tmp);
    await rename(tmp, target);
    tmp = undefined;
    await syncDir(path.dirname(target));
  } catch (err) {
    if (tmp !== undefined) await unlink(tmp).catch(() => {});
    throw ioError('write', abs, err);
  }
}

const updateQueues = new Map<string, Promise<unknown>>();

/**
 * Read-modify-write of the raw JSON: `mutate` edits the parsed document in place (unknown keys and
 * untouched servers are preserved as they are), the result is validated with parseConfig and only
 * then written atomically. An invalid result throws CONFIG_INVALID and leaves the file untouched.
 * Concurrent updates of the same file within this process run one after another.
 * Resolves to the validated new config.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- `mutate` edits the parsed JSON in place before validation
export function updateConfigFile(file: string, mutate: (raw: any) => void): Promise<LoadedConfig> {
  const abs = path.resolve(file);
  const prev = updateQueues.get(abs) ?? Promise.resolve();
  const run = prev.then(async () => {
    const text = await readText(abs);
    const { value } = parseJsonOrThrow(abs, text);
    mutate(value);
    const loaded = validateOrThrow(abs, value, []);
    await writeConfigAtomic(abs, value);
    return loaded;
  });
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  updateQueues.set(abs, settled);
  void settled.then(() => {
    if (updateQueues.get(abs) === settled) updateQueues.delete(abs);
  });
  return run;
}
