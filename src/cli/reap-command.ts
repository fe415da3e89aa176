/**
 * `mcp-warden reap [--dry-run] [--json]`: find (and kill) processes left behind by dead mcp-warden
 * daemons, the same scan `serve` runs before it starts anything. See src/daemon/startup-reaper.ts.
 */
import pino from 'pino';
import { reapOrphans, type ReapReport } from '../daemon/startup-reaper.js';
import { parseCommand } from './parse-command.js';
import { join } from 'node:path';
import { defaultDataDir } from '../core/defaults.js';

export const REAP_HELP = `Usage: mcp-warden reap [--dry-run] [--json]

Finds processes and Docker containers left behind by mcp-warden daemons that are no longer running
(killed with SIGKILL, crashed, or whose watchdog was killed too). It kills their process groups
(SIGTERM, a short wait, then SIGKILL, verified by re-scanning the process table) and force-removes their
containers (verified by asking the engine).

A process counts as left behind when its environment names an owner daemon (MCP_WARDEN_OWNER, or
MCP_WARDEN_WATCHDOG for a watchdog) whose pid no longer exists or now belongs to a process with a
different start time. A container counts as left behind when it is labelled
mcp-warden.managed=true and its mcp-warden.owner label names such a daemon (selected by labels only,
never by name). Processes and containers of running daemons (any data dir) are never touched. Only
processes you may read and signal are seen (root sees everyone's); containers are those of the
engine at DOCKER_HOST (or the default socket); without an engine, containers are skipped with a note.
\`mcp-warden serve\` runs the same reap before it starts any server.

Options:
  --dry-run   list what would be killed or removed; signal and remove nothing
  --json      print the report as JSON (dryRun, instances, processes, containers, docker, killed, survivors, errors)
  -h, --help  show this help

Exit status:
  0  the scan finished and every orphan found is gone (also when none was found, and for --dry-run)
  1  some orphans survived SIGKILL (listed as survivors; e.g. owned by another user), or a container
     could not be removed (marked STILL PRESENT, with the engine's answer)
  2  usage error
`;

function formatReport(r: ReapReport): string {
  const lines: string[] = [];
  const containers = r.containers ?? [];
  if (r.processes.length === 0 && containers.length === 0) {
    lines.push('No orphaned mcp-warden processes or containers found.');
  } else {
    lines.push(
      `Found ${r.processes.length} orphaned process(es) and ${containers.length} orphaned container(s) of ${r.instances.length} dead mcp-warden instance(s)` +
        (r.dryRun ? ' (dry run: nothing was signalled or removed):' : ':'),
    );
    for (const inst of r.instances) {
      lines.push(`  instance ${inst.instanceId} (daemon pid ${inst.ownerPid}, not running)`);
      for (const p of r.processes.filter((x) => x.instanceId === inst.instanceId)) {
        const what = p.role === 'watchdog' ? 'watchdog' : `server ${p.server ?? '?'}`;
        const status = r.dryRun ? '' : p.killed ? '  killed' : '  STILL RUNNING';
        lines.push(`    pid ${p.pid} (pgid ${p.pgid}) ${what}: ${p.command}${status}`);
      }
      for (const c of containers.filter((x) => x.instanceId === inst.instanceId)) {
        const status = r.dryRun ? '' : c.removed ? '  removed' : `  STILL PRESENT${c.error ? ` (${c.error})` : ''}`;
        lines.push(`    container ${c.name || c.id.slice(0, 12)} (${c.id.slice(0, 12)}, ${c.state}) server ${c.server || '?'}${status}`);
      }
    }
    if (!r.dryRun) {
      const how = r.escalation === 'sigkill' ? 'SIGKILL was needed' : r.escalation === 'sigterm' ? 'SIGTERM was enough' : 'already gone';
      if (r.processes.length > 0) lines.push(`Killed ${r.killed} of ${r.processes.length} process(es) in ${r.durationMs} ms (${how}).`);
      if (containers.length > 0) lines.push(`Removed ${containers.filter((c) => c.removed).length} of ${containers.length} container(s).`);
      if (r.survivors.length) lines.push(`Survivors: ${r.survivors.join(', ')}`);
    }
  }
  if (r.docker?.skipped !== undefined) lines.push(`Containers not checked: no Docker engine at ${r.docker.engine} (${r.docker.skipped}).`);
  for (const e of r.errors) lines.push(`warning: ${e}`);
  return lines.join('\n') + '\n';
}

export async function runReap(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    'reap',
    argv,
    {
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    REAP_HELP,
  );
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  // The default data dir's group marks stand in for environments ps cannot show (docs/guarantees.md, "Without /proc").
  const report = await reapOrphans({
    logger: pino({ enabled: false }),
    dryRun: values['dry-run'] ?? false,
    marksDir: join(defaultDataDir(), 'process-groups'),
  });
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
  const containersLeft = (report.containers ?? []).some((c) => !report.dryRun && !c.removed);
  return report.survivors.length > 0 || containersLeft ? 1 : 0;
}
