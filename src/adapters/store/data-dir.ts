/**
 * The data dir itself and its token file: created on first start, private to the user.
 */
import { promises as fs, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ErrorCodes, WardenError } from '../../core/error-codes.js';
import { describeFsError, makeDirs } from './make-dirs.js';
import { readFileNoFollow } from './no-follow.js';

export async function ensureDataDir(dataDir: string): Promise<void> {
  try {
    await makeDirs(dataDir, 0o700); // not fs.mkdir recursive: it spins forever under /proc (make-dirs.ts)
    await fs.access(dataDir, fsConstants.W_OK);
    // Private to the user: a dir made more open later is closed again (only ours can be chmod'ed).
    const st = await fs.stat(dataDir);
    if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) await fs.chmod(dataDir, 0o700).catch(() => undefined);
  } catch (err) {
    throw new WardenError(ErrorCodes.DATA_DIR_UNWRITABLE, `data dir ${dataDir} is not writable: ${describeFsError(err)}`);
  }
}

/**
 * The bearer token of the control channel (/ws) and of /mcp on a remote bind: `<dataDir>/token`,
 * created on first start with mode 0600 and reused afterwards. base64url without padding, so it is
 * also valid as a WebSocket subprotocol entry (`auth.<token>`). A file that is too short or holds other
 * characters is replaced.
 */
export async function ensureToken(dataDir: string): Promise<string> {
  const file = join(dataDir, 'token');
  try {
    // Not through a symlink (no-follow.ts, E_DATA_FILE_SYMLINK refuses the start); mode fixed to 0600.
    const t = (await readFileNoFollow(file, 0o600)).trim();
    if (/^[A-Za-z0-9_-]{32,512}$/.test(t)) return t;
  } catch (err) {
    if (err instanceof WardenError) throw err;
    // created below
  }
  const token = randomBytes(32).toString('base64url');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, token + '\n', { mode: 0o600, flag: 'wx' });
  await fs.rename(tmp, file);
  return token;
}
