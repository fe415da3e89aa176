#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the visualizer's browser tests (idempotent).
#
#   /usr/bin/chromium (or $MCP_WARDEN_CHROMIUM) is executable -> nothing to do.
#   otherwise, as root: apt-get install -y chromium (apt-get update first when the package lists
#   are empty, or when the install fails with the current lists).
#   not root and no chromium -> exit 1 with a clear message.
#
# playwright-core drives it (executablePath /usr/bin/chromium); `npx playwright install` cannot
# download browsers on these machines. Used by .ci/run; see test/helpers/browser-available.ts.
set -euo pipefail

CHROMIUM="${MCP_WARDEN_CHROMIUM:-/usr/bin/chromium}"
LOG="${MCP_WARDEN_APT_LOG:-/tmp/mcp-warden-apt-chromium.log}"

say() { printf 'ensure-chromium: %s\n' "$*" >&2; }

if [ -x "$CHROMIUM" ]; then
  say "$CHROMIUM is there ($("$CHROMIUM" --version 2>/dev/null | head -n 1 || echo 'version unknown')); nothing to do"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  say "$CHROMIUM is missing and this is not root: install Debian's chromium yourself (apt-get install chromium)"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
  say "apt package lists empty: apt-get update"
  apt-get update -qq
fi
say "installing chromium (log: $LOG)"
if ! apt-get install -y -qq chromium >"$LOG" 2>&1; then
  say "install failed with the current package lists: apt-get update and retry"
  apt-get update -qq
  apt-get install -y -qq chromium >"$LOG" 2>&1 || { say "apt-get install chromium failed; see $LOG"; tail -n 20 "$LOG" >&2 || true; exit 1; }
fi
if [ ! -x "$CHROMIUM" ]; then
  say "chromium installed, but $CHROMIUM is still not executable"
  exit 1
fi
say "installed: $("$CHROMIUM" --version 2>/dev/null | head -n 1 || echo chromium)"
