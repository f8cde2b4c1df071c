#!/usr/bin/env bash
# Runs a command with the local services up (what `make test` runs pytest in): starts those that
# are not running (services.sh up) and, when the command ends, also by failure or Ctrl-C, stops
# only those it started. Services already running (`make services-up`) are left running.
# Usage: with-services.sh COMMAND [ARG...]; exits with COMMAND's exit code.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STARTED=$(mktemp)

say() { echo "[with-services] $*" >&2; }

# shellcheck disable=SC2317 # run by the EXIT trap
stop_started() {
  local started t0=$SECONDS
  mapfile -t started <"$STARTED"
  rm -f "$STARTED"
  ((${#started[@]})) || return 0
  say "stopping what this run started: ${started[*]}"
  "$HERE/services.sh" down "${started[@]}" || say "FAILED to stop ${started[*]}; see above"
  say "timing services-down $((SECONDS - t0))s"
}
# Bash runs it on exit, including death by SIGINT or SIGTERM; a command that handles Ctrl-C itself
# (pytest prints its summary) returns, and the script goes on to exit with its code.
trap stop_started EXIT

t0=$SECONDS
if ! "$HERE/services.sh" up --record "$STARTED"; then
  say "not every service is up (see above): the tests that need a missing one fail, naming it"
fi
say "timing services-up $((SECONDS - t0))s"
if [[ -s $STARTED ]]; then
  say "started for this run, stopped when it ends: $(paste -sd' ' "$STARTED")"
fi

t0=$SECONDS
"$@"
rc=$?
say "timing command $((SECONDS - t0))s"
exit $rc
