/**
 * Data-dir files are opened without following symbolic links (O_NOFOLLOW): a link planted in the data
 * dir must not make the daemon read, write or chmod another file (a `daemon.log` symlink
 * was followed and its target chmod'ed). A link is refused with E_DATA_FILE_SYMLINK naming the file.
 * Files are private: a looser mode than 0600 is fixed through the descriptor (never through a path).
 */
import * as fs from 'node:fs';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';

const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;

export function symlinkRefused(file: string): WardenError {
  return new WardenError(
    ErrorCodes.DATA_FILE_SYMLINK,
    `${file} is a symbolic link; mcp-warden does not follow links in its data dir (remove it; the file is created anew)`,
    { file },
  );
}

/** ELOOP from an O_NOFOLLOW open means the last component is a symlink. */
function rethrow(err: unknown, file: string): never {
  if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw symlinkRefused(file);
  throw err;
}

/** `open(2)` with O_NOFOLLOW added; flags as fs.constants bits. Throws E_DATA_FILE_SYMLINK for a link. */
export function openNoFollowSync(file: string, flags: number, mode = 0o600): number {
  try {
    return fs.openSync(file, flags | O_NOFOLLOW, mode);
  } catch (err) {
    rethrow(err, file);
  }
}

/** Reads a whole file without following a link at `file`; fixes a mode looser than `mode` on the descriptor. */
export function readFileNoFollowSync(file: string, mode = 0o600): string {
  const fd = openNoFollowSync(file, fs.constants.O_RDONLY);
  try {
    fixModeSync(fd, mode);
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

export async function readFileNoFollow(file: string, mode = 0o600): Promise<string> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, fs.constants.O_RDONLY | O_NOFOLLOW);
  } catch (err) {
    rethrow(err, file);
  }
  try {
    const st = await fh.stat();
    if ((st.mode & 0o777 & ~mode) !== 0) await fh.chmod(mode).catch(() => undefined);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/** chmod through the descriptor when the file is more open than `mode` (not ours: left alone). */
export function fixModeSync(fd: number, mode: number): void {
  try {
    const st = fs.fstatSync(fd);
    if ((st.mode & 0o777 & ~mode) !== 0) fs.fchmodSync(fd, mode);
  } catch {
    // a filesystem without modes, or not our file
  }
}
