/**
 * `mkdir -p` for the data dir. Not `fs.mkdir(dir, { recursive: true })`: on Node 20 that spins
 * forever (100% CPU, never settles) for a path the kernel refuses with ENOENT although its parent
 * exists, e.g. anything under /proc. This walks up only on ENOENT and stops at an existing parent.
 */
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';

export async function makeDirs(dir: string, mode: number): Promise<void> {
  try {
    await fs.mkdir(dir, { mode });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await fs.stat(dir)).isDirectory()) return;
      throw Object.assign(new Error(`${dir} exists and is not a directory`), { code: 'ENOTDIR' });
    }
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
    await makeDirs(parent, mode);
  }
  try {
    await fs.mkdir(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is not a directory',
  ENOENT: 'cannot be created there',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
};

/** `EACCES (permission denied)`: the errno code and what it means, for messages about a path. */
export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (!code) return err instanceof Error ? err.message : String(err);
  return REASONS[code] ? `${code} (${REASONS[code]})` : code;
}
