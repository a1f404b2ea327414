#!/usr/bin/env bash
# `make test`'s pytest runs, one per lab server given: the whole suite against the first, the lab
# tests marked `server` against each other one (docs/testing.md says which and why).
#
# The runs go at the same time, each on a lab of its own: an engine run keeps the two cores of a
# small machine busy only about 60% of the time (a process pipeline: program, engine, providers,
# server), so a second session fills most of what the first leaves idle. Each later run gets its own
# ports (+2000 per server after the first, clear of the ranges the lab tests use for their own labs
# at +40..+71, +100 and +200), lab directory and passphrase directory, so the labs never meet. Every
# output line carries its server's name; each run ends with its summary line, and the script fails
# when any run did. A failed run's failures are repeated at the very end (pytest's short summary, or
# its last lines if it has none), so a log that keeps only its tail, as CI's does, still names them.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 SERVER [SERVER...]" >&2; exit 2; }

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
base_offset=${VAULTFLEET_LAB_PORT_OFFSET:-0}
base_dir=${VAULTFLEET_LAB_DIR:-$HOME/.local/state/vaultfleet/lab}
base_config=${VAULTFLEET_CONFIG_DIR:-$HOME/.config/vaultfleet}

run() {  # index, server, number of servers
  local i=$1 server=$2 count=$3 what marks args rc t0
  if [ "$i" -eq 0 ]; then
    what="whole suite" args=()
    # `second_run` tests (server-independent) go to the second run when there is one: it has less to do.
    [ "$count" -gt 1 ] && what="whole suite but second_run" args=(-m "not second_run")
    export VAULTFLEET_LAB_PORT_OFFSET=$base_offset VAULTFLEET_LAB_DIR=$base_dir VAULTFLEET_CONFIG_DIR=$base_config
  else
    what="server-dependent lab tests" marks="lab and server"
    [ "$i" -eq 1 ] && what="$what and second_run" marks="($marks) or second_run"
    # Not the cache plugin either: two sessions would write .pytest_cache at once.
    args=(-m "$marks" -p no:cacheprovider)
    export VAULTFLEET_LAB_PORT_OFFSET=$((base_offset + 2000 * i)) \
      VAULTFLEET_LAB_DIR=$base_dir-$server VAULTFLEET_CONFIG_DIR=$base_config/test-$server
  fi
  t0=$(date +%s)
  echo "[$server] $what against lab server $server (ports +$VAULTFLEET_LAB_PORT_OFFSET, lab in $VAULTFLEET_LAB_DIR)"
  VAULTFLEET_LAB_SERVER=$server .venv/bin/python -m pytest -v --timeout=1800 "${args[@]}" 2>&1 \
    | sed -u "s/^/[$server] /" | tee "$results/$i.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    # From pytest's short summary to the end; without one (pytest itself failed), the last lines.
    sed -n '/=\{3,\} short test summary info =\{3,\}/,$p' "$results/$i.log" > "$results/$i.failures"
    [ -s "$results/$i.failures" ] || tail -n 30 "$results/$i.log" > "$results/$i.failures"
  fi
  echo "[test] $what against $server: $([ "$rc" -eq 0 ] && echo passed || echo FAILED) in $(($(date +%s) - t0))s" \
    > "$results/$i.result"
  return "$rc"
}

servers=("$@")
pids=()
for i in "${!servers[@]}"; do
  run "$i" "${servers[$i]}" "${#servers[@]}" &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do
  wait "$pid" || rc=1
done
echo
for failures in "$results"/*.failures; do
  [ -e "$failures" ] && cat "$failures" && echo
done
cat "$results"/*.result
exit $rc
