#!/usr/bin/env bash
# demo/demo.sh -- dbpool in action (run by `make demo`).
#
# A temporary database with a host-wide limit of 3 connections, and about six
# real processes contending for it through the SQLite extension: sqlite3
# shells that load dbpool and hold a connection open. A separate observer
# process shows pool_stats and pool_connections as it goes. Everything it
# makes (processes, files, the pool itself) is removed at the end.
set -u
B=${B:-build}
cd "$(dirname "$0")/.."
EXT=$(realpath "$B/dbpool.so"); EXT=${EXT%.so}
CTL=$(realpath "$B/dbpoolctl")
dir=$(mktemp -d /tmp/dbpool-demo-XXXXXX)
db=$dir/app.db
export DBPOOL_NAMESPACE="${DBPOOL_TEST_RUN:-}demo$$" DBPOOL_MAX_CONNECTIONS=3
unset DBPOOL_ACQUIRE_TIMEOUT_MS
declare -A PID FD

cleanup() {
  for name in "${!PID[@]}"; do kill -9 "${PID[$name]}" 2>/dev/null; done
  wait 2>/dev/null
  "$CTL" rm "$db" --force >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
# SQL in a separate observer process (an in-memory connection: it holds no slot).
observe() { sqlite3 -batch :memory: ".load $EXT" ".headers on" ".mode column" "$1"; }
value() { sqlite3 -batch :memory: ".load $EXT" "$1"; }
wait_for() { # wait until the SQL answers 1
  for _ in $(seq 1 500); do
    [ "$(value "$1")" = 1 ] && return 0
    sleep 0.02
  done
  echo "demo: timed out waiting for: $1" >&2
  exit 1
}
where="database = '$db'"

# start NAME SQL...: a sqlite3 shell fed through a FIFO, kept open.
start() {
  local name=$1; shift
  mkfifo "$dir/$name.in"
  sqlite3 -batch :memory: < "$dir/$name.in" > "$dir/$name.out" 2>&1 &
  PID[$name]=$!
  exec {fd}> "$dir/$name.in"
  FD[$name]=$fd
  printf '%s\n' ".load $EXT" "$@" >&"$fd"
}
send() { printf '%s\n' "$2" >&"${FD[$1]}"; }
quit() { printf '.quit\n' >&"${FD[$1]}"; wait "${PID[$1]}" 2>/dev/null; unset "PID[$1]"; }

sqlite3 "$db" "CREATE TABLE jobs(id INTEGER PRIMARY KEY, what TEXT);"
echo "database: $db"
echo "host-wide limit: max_connections = 3 (DBPOOL_MAX_CONNECTIONS when the pool is created)"

say "Three workers open a connection each (sqlite3 shells with .load dbpool)"
for w in worker-1 worker-2 worker-3; do
  start "$w" ".open $db" "SELECT dbpool_label('$w');"
  wait_for "SELECT count(*) FROM pool_connections WHERE $where AND label = '$w'"
done
observe "SELECT database, active, max_connections, waiting, processes, utilization FROM pool_stats WHERE $where;"
observe "SELECT pid, process, state, label FROM pool_connections WHERE $where;"

say "A fourth process opens a connection: the pool is full, so it waits (up to 20 s)"
start waiter ".open file:$db?dbpool_timeout=20000" "SELECT dbpool_label('waiter');" \
  "SELECT 'waiter got in after ' || (SELECT duration_ms FROM pool_connections WHERE current) || ' ms holding';"
wait_for "SELECT waiting = 1 FROM pool_stats WHERE $where"
observe "SELECT pid, process, state FROM pool_connections WHERE $where AND state = 'waiting';"

say "worker-1 closes its connection: the waiter gets in at once"
quit worker-1
wait_for "SELECT count(*) FROM pool_connections WHERE $where AND label = 'waiter' AND state = 'active'"
observe "SELECT pid, state, label FROM pool_connections WHERE $where;"

say "A fifth process will only wait 500 ms (?dbpool_timeout=500): it times out"
sqlite3 -batch :memory: ".load $EXT" ".open file:$db?dbpool_timeout=500" 2>&1 | sed 's/^/    /'

say "worker-2 is killed with SIGKILL while it holds a slot; another process waits"
start latecomer ".open file:$db?dbpool_timeout=20000" "SELECT dbpool_label('latecomer');"
wait_for "SELECT waiting = 1 FROM pool_stats WHERE $where"
echo "    kill -9 ${PID[worker-2]} (worker-2)"
kill -9 "${PID[worker-2]}"; wait "${PID[worker-2]}" 2>/dev/null; unset "PID[worker-2]"
start=$(date +%s%N)
wait_for "SELECT count(*) FROM pool_connections WHERE $where AND label = 'latecomer' AND state = 'active'"
echo "    the dead worker's slot came back: latecomer got in $(( ($(date +%s%N) - start) / 1000000 )) ms after the kill"
observe "SELECT pid, state, label FROM pool_connections WHERE $where;"
observe "SELECT active, waiting, total_acquired, total_released, total_timeouts, total_reclaimed FROM pool_stats WHERE $where;"

say "The same pool, seen by dbpoolctl"
"$CTL" list

say "Everyone leaves; the pool is removed"
for name in "${!PID[@]}"; do quit "$name"; done
"$CTL" rm "$db"
echo "done."
