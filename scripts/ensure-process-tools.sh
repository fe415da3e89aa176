#!/usr/bin/env bash
# Makes sure ps, pgrep (Debian's procps) and lsof are installed (idempotent): the portable process
# table (src/adapters/process/portable-table.ts) runs them, and test/run-tests.mjs runs the orphan,
# watchdog, reaper and single-instance suites a second time on it. Used by .ci/run.
#
#   all three on PATH          -> nothing to do.
#   otherwise, as root         -> apt-get install -y procps lsof (apt-get update first when the
#                                 package lists are empty, or when the install fails with them).
#   not root and one missing   -> exit 1 with a clear message.
set -euo pipefail

LOG="${MCP_WARDEN_APT_LOG:-/tmp/mcp-warden-apt-process-tools.log}"
say() { printf 'ensure-process-tools: %s\n' "$*" >&2; }

missing() { for t in ps pgrep lsof; do command -v "$t" >/dev/null 2>&1 || printf '%s ' "$t"; done; }

if [ -z "$(missing)" ]; then
  say "ps, pgrep and lsof are there; nothing to do"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  say "missing: $(missing)and this is not root: install them yourself (apt-get install procps lsof)"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
  say "apt package lists empty: apt-get update"
  apt-get update -qq
fi
say "installing procps lsof for: $(missing)(log: $LOG)"
if ! apt-get install -y -qq procps lsof >"$LOG" 2>&1; then
  say "install failed with the current package lists: apt-get update and retry"
  apt-get update -qq
  apt-get install -y -qq procps lsof >"$LOG" 2>&1 || { say "apt-get install procps lsof failed; see $LOG"; tail -n 20 "$LOG" >&2 || true; exit 1; }
fi
if [ -n "$(missing)" ]; then
  say "installed, but still missing: $(missing)"
  exit 1
fi
say "installed: $(ps -V 2>&1 | head -n 1); lsof $(lsof -v 2>&1 | sed -n 's/^ *revision: *//p' | head -n 1)"
