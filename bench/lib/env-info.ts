/** What the numbers were measured on. */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { availableParallelism, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { REPO } from './paths.js';

export interface EnvInfo {
  date: string;
  nproc: string;
  cpu: string;
  memory: string;
  node: string;
  kernel: string;
  warden: string;
  sdk: string;
  docker: { available: boolean; detail: string };
}

function sh(cmd: string, args: string[], timeout = 5_000): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, cwd: REPO });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return {
      ok: false,
      out:
        code === 'ENOENT' ? `${cmd} not found` : code === 'ETIMEDOUT' ? `${cmd} ${args[0]} timed out after ${timeout} ms` : r.error.message,
    };
  }
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return { ok: r.status === 0, out: r.status === 0 ? out : `${cmd} ${args[0]} exited ${r.status}: ${out}` };
}

function version(pkgDir: string): string {
  try {
    return (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function envInfo(): EnvInfo {
  const nproc = sh('nproc', []);
  let cpu = 'unknown';
  try {
    cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  const rev = sh('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no']);
  const dirtyCount = dirty.ok ? dirty.out.split('\n').filter(Boolean).length : 0;
  const warden = `${version(REPO)}${rev.ok ? ` (git ${rev.out}${dirtyCount > 0 ? `, ${dirtyCount} modified files` : ''})` : ''}`;
  const docker = sh('docker', ['info', '--format', '{{.ServerVersion}}'], 10_000);
  return {
    date: new Date().toISOString(),
    nproc: nproc.ok ? nproc.out : String(availableParallelism()),
    cpu,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    kernel: `${process.platform} ${release()}`,
    warden,
    sdk: version(join(REPO, 'node_modules', '@modelcontextprotocol', 'sdk')),
    docker: docker.ok
      ? { available: true, detail: `Docker Engine ${docker.out}` }
      : { available: false, detail: docker.out.split('\n').filter(Boolean).slice(-1)[0]?.slice(0, 200) || 'docker info failed' },
  };
}
