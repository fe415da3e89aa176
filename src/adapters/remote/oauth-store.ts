/**
 * OAuth tokens and client registrations of remote servers: `<data-dir>/oauth/<server>.json`, mode
 * 0600 in a 0700 directory, read without following links (no-follow.ts), written atomically
 * (temporary file, then rename). One record per server, bound to the server URL it was obtained for
 * (another URL in the config reads as "none"). Kept in memory while the file is unchanged (the
 * transports ask for the token on every request; an edit or removal of the file is seen at the next
 * one). Nothing here logs a value.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { OAuthClientInformationMixed, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { readFileNoFollowSync } from '../store/no-follow.js';

export interface OAuthRecord {
  /** The server URL the credentials belong to. */
  serverUrl: string;
  /** The redirect URI the client was registered with (the daemon's callback at that time). */
  redirectUri?: string;
  clientInformation?: OAuthClientInformationMixed;
  tokens?: OAuthTokens;
  savedAt: string;
}

export class OAuthStore {
  readonly dir: string;
  /** Records by server, with the file's mtime and size when read (an edit or removal of the file is seen). */
  private readonly cache = new Map<string, { rec: OAuthRecord | null; stamp: string }>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'oauth');
  }

  fileOf(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  /** The record of `name` for `serverUrl`; undefined when none (or for another URL, or unreadable). */
  read(name: string, serverUrl: string): OAuthRecord | undefined {
    const rec = this.current(name);
    return rec && rec.serverUrl === serverUrl ? rec : undefined;
  }

  private stampOf(name: string): string {
    try {
      const st = fs.lstatSync(this.fileOf(name));
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      return 'none';
    }
  }

  private current(name: string): OAuthRecord | null {
    const stamp = this.stampOf(name);
    const cached = this.cache.get(name);
    if (cached && cached.stamp === stamp) return cached.rec;
    const rec = stamp === 'none' ? null : this.load(name);
    this.cache.set(name, { rec, stamp });
    return rec;
  }

  private load(name: string): OAuthRecord | null {
    try {
      const parsed = JSON.parse(readFileNoFollowSync(this.fileOf(name))) as OAuthRecord;
      return typeof parsed === 'object' && parsed !== null && typeof parsed.serverUrl === 'string' ? parsed : null;
    } catch {
      return null;
    }
  }

  /** Replace the record of `name` (0600, atomic). */
  write(name: string, rec: Omit<OAuthRecord, 'savedAt'>): void {
    const full: OAuthRecord = { ...rec, savedAt: new Date().toISOString() };
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(this.dir, 0o700);
    const tmp = join(this.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(full, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, this.fileOf(name));
    this.cache.set(name, { rec: full, stamp: this.stampOf(name) });
  }

  /** Change part of the record of `name` for `serverUrl` (a new one if there is none). */
  update(name: string, serverUrl: string, change: Partial<Omit<OAuthRecord, 'savedAt' | 'serverUrl'>>): void {
    const current = this.read(name, serverUrl);
    this.write(name, { ...(current ?? { serverUrl }), ...change, serverUrl });
  }

  /** Drop parts of a record (undefined = the whole record). */
  forget(name: string, parts?: Array<'tokens' | 'clientInformation'>): boolean {
    const rec = this.current(name);
    if (!rec) return false;
    if (parts) {
      const next: OAuthRecord = { ...rec };
      for (const p of parts) delete next[p];
      this.write(name, next);
      return true;
    }
    fs.rmSync(this.fileOf(name), { force: true });
    this.cache.delete(name);
    return true;
  }
}
