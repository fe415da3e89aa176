#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine (idempotent).
#
#   1. `docker info` answers            -> nothing to do.
#   2. otherwise, as root:
#        - `dockerd` missing            -> apt-get update (only when the package lists are missing
#                                          or the install fails without it) + apt-get install -y docker.io
#        - start dockerd in the background, log to $MCP_WARDEN_DOCKERD_LOG, pid to $MCP_WARDEN_DOCKERD_PIDFILE
#        - wait (<= $MCP_WARDEN_DOCKERD_WAIT seconds) until `docker info` answers
#      Storage: the default driver (overlay2) first; if dockerd dies or does not answer with it,
#      it is restarted once with `--storage-driver=vfs` (slow but works on any filesystem).
#   3. not root and no engine           -> exit 1 with a clear message.
#
# The pid file names exactly the dockerd this script started: tests use it to `kill -STOP`/`-CONT`
# that engine and never another. If an engine already answers, the pid file is left as is (it is only
# trusted by readers when the pid still is a dockerd, see test/helpers/docker-available.ts).
#
# Environment: MCP_WARDEN_DOCKERD_PIDFILE (default /tmp/mcp-warden-dockerd.pid),
#              MCP_WARDEN_DOCKERD_LOG (default /tmp/mcp-warden-dockerd.log),
#              MCP_WARDEN_DOCKERD_WAIT (seconds, default 60), MCP_WARDEN_DOCKERD_FLAGS (extra flags).
set -euo pipefail

PIDFILE="${MCP_WARDEN_DOCKERD_PIDFILE:-/tmp/mcp-warden-dockerd.pid}"
LOG="${MCP_WARDEN_DOCKERD_LOG:-/tmp/mcp-warden-dockerd.log}"
WAIT="${MCP_WARDEN_DOCKERD_WAIT:-60}"
EXTRA_FLAGS="${MCP_WARDEN_DOCKERD_FLAGS:-}"

say() { printf 'ensure-docker: %s\n' "$*" >&2; }

# Bounded: a stopped (SIGSTOP) or wedged engine accepts the connection and never answers.
engine_answers() { timeout 5 docker info >/dev/null 2>&1; }

if ! command -v docker >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" -ne 0 ]; then
  say "no docker client, no engine, and not root: cannot install one"; exit 1
fi

if command -v docker >/dev/null 2>&1 && engine_answers; then
  say "engine already answers ($(timeout 5 docker info --format '{{.ServerVersion}} storage={{.Driver}}' 2>/dev/null)); nothing to do"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  say "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}) and this is not root: start one yourself"
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  say "dockerd missing: installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
    say "apt package lists empty: apt-get update"
    apt-get update -qq
  fi
  if ! apt-get install -y -qq docker.io >/tmp/mcp-warden-apt-install.log 2>&1; then
    say "install failed with the current package lists: apt-get update and retry"
    apt-get update -qq
    apt-get install -y -qq docker.io >/tmp/mcp-warden-apt-install.log 2>&1 || {
      say "apt-get install docker.io failed; see /tmp/mcp-warden-apt-install.log"; exit 1; }
  fi
  say "installed: $(dockerd --version)"
fi

# A dockerd from an earlier run that no longer answers (e.g. left stopped by an interrupted test).
if [ -s "$PIDFILE" ]; then
  old="$(cat "$PIDFILE")"
  if [ -n "$old" ] && [ "$(cat "/proc/$old/comm" 2>/dev/null || true)" = "dockerd" ]; then
    say "dockerd $old from $PIDFILE does not answer: sending SIGCONT, then waiting 5 s"
    kill -CONT "$old" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      if engine_answers; then say "dockerd $old answers again"; exit 0; fi
      sleep 0.5
    done
    say "stopping unresponsive dockerd $old"
    kill -TERM "$old" 2>/dev/null || true
    for _ in $(seq 1 20); do [ -d "/proc/$old" ] || break; sleep 0.5; done
    [ -d "/proc/$old" ] && kill -KILL "$old" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
fi
if pgrep -x dockerd >/dev/null 2>&1; then
  say "another dockerd is running but not answering (pid(s) $(pgrep -x dockerd | tr '\n' ' ')); not touching it"
  exit 1
fi

start_dockerd() {
  # $@: extra flags. Prints nothing; sets DOCKERD_PID.
  # shellcheck disable=SC2086
  nohup dockerd $EXTRA_FLAGS "$@" >>"$LOG" 2>&1 </dev/null &
  DOCKERD_PID=$!
  echo "$DOCKERD_PID" >"$PIDFILE"
}

wait_engine() {
  # $1: seconds. 0 = answers, 1 = dockerd died, 2 = timed out.
  local deadline=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if engine_answers; then return 0; fi
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then return 1; fi
    sleep 0.5
  done
  return 2
}

: >"$LOG"
started=$(date +%s)
say "starting dockerd (default storage driver), log $LOG"
start_dockerd
rc=0; wait_engine "$WAIT" || rc=$?
if [ "$rc" -ne 0 ]; then
  say "dockerd with the default storage driver $( [ $rc -eq 1 ] && echo died || echo 'did not answer' ); last log lines:"
  tail -n 5 "$LOG" >&2 || true
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  sleep 2
  say "retrying with --storage-driver=vfs"
  start_dockerd --storage-driver=vfs
  rc=0; wait_engine "$WAIT" || rc=$?
  if [ "$rc" -ne 0 ]; then
    say "dockerd did not come up (see $LOG)"; tail -n 20 "$LOG" >&2 || true
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    exit 1
  fi
fi
say "dockerd pid $DOCKERD_PID answers after $(( $(date +%s) - started )) s ($(timeout 5 docker info --format '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupDriver}}')); pid file $PIDFILE"
