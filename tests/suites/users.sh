#!/usr/bin/env bash
# tests/suites/users.sh -- several real users share a database with the real
# sqlite3 shell and dbpoolctl (docs/operations.md, "Who may join or steer a
# pool"): the day-one repros of issue 9, run as root with runuser to the
# system users daemon (the database's owner) and nobody (another user).
#
#   1. a user who can only read a 0644 database opens it first (mode=ro):
#      the owner and root still get in, even after that reader exits;
#   2. root runs `dbpoolctl set` first on the owner's database: the owner is
#      not refused, and can remove the pool;
#   3. the owner chmods the database after the pool exists: nobody is
#      refused, and the owner's `dbpoolctl rm --force` works;
#   4. a 0600 database's pool is closed to other users;
#   5. a holder in another pid namespace (unshare -pf) is alive to the host.
set -u
B=${B:-build}
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ] || ! command -v runuser >/dev/null; then
  echo "skipped: needs root and runuser"; exit 0
fi
export DBPOOL_NAMESPACE="${DBPOOL_TEST_RUN:-}users$$"
unset DBPOOL_MAX_CONNECTIONS DBPOOL_ACQUIRE_TIMEOUT_MS
work=$(mktemp -d /tmp/dbpool-users-XXXXXX)
chmod 0755 "$work"
# Where every user can read them (the checkout may be in root's home).
cp "$B/dbpool.so" "$B/dbpoolctl" "$work/"
chmod 0755 "$work/dbpool.so" "$work/dbpoolctl"
ext=$work/dbpool ctl=$work/dbpoolctl
fails=0
contains() { case $1 in *"$2"*) return 0;; esac; echo "  no '$2' in: $1" >&2; return 1; }
check() { # check NAME COMMAND...: the command must succeed
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
as() { # as USER CMD...: run with DBPOOL_NAMESPACE kept
  local u=$1; shift
  runuser -u "$u" -- env DBPOOL_NAMESPACE="$DBPOOL_NAMESPACE" "$@"
}
newdb() { # newdb NAME MODE: a database owned by daemon
  local db=$work/$1
  sqlite3 "$db" "CREATE TABLE t(x); INSERT INTO t VALUES (1);"
  chown daemon:daemon "$db"; chmod "$2" "$db"
  echo "$db"
}
joins() { # joins USER URI: a connection counted, a query answered
  local out
  out=$(as "$1" sqlite3 ":memory:" ".load $ext" ".open $2" \
        "SELECT count(*) FROM t; SELECT sum(active) FROM pool_stats WHERE database LIKE '%$(basename "${2%%\?*}")';" 2>&1)
  [ "$out" = "$(printf '1\n1')" ] || { echo "  $1 on $2: $out" >&2; return 1; }
}

# 1. A reader first.
db=$(newdb reader-first.db 0644)
check "reader (nobody) joins a 0644 database first, read-only" joins nobody "file:$db?mode=ro"
check "the pool is the reader's segment" \
  [ "$(stat -c %U /dev/shm/dbpool."$DBPOOL_NAMESPACE".* 2>/dev/null)" = nobody ]
check "then the owner (daemon) joins" joins daemon "$db"
check "the reader cannot steer it" sh -c "! runuser -u nobody -- env DBPOOL_NAMESPACE=$DBPOOL_NAMESPACE $ctl set '$db' max_connections=3 2>/dev/null"
check "the owner can" as daemon "$ctl" set "$db" max_connections=3
out=$(as daemon "$ctl" rm "$db")
check "the owner removes a reader's pool: marked, a fresh one starts" \
  contains "$out" "marked the pool of"
check "and the owner joins the fresh one" joins daemon "$db"
check "then root joins" joins root "$db"
"$ctl" gc >/dev/null
check "root deleted the marked one; one pool is left, the owner's" \
  [ "$(stat -c %U /dev/shm/dbpool."$DBPOOL_NAMESPACE".*)" = daemon ]
as daemon "$ctl" rm "$db" >/dev/null

# 2. Root first.
db=$(newdb root-first.db 0640)
check "root sets the limit first" "$ctl" set "$db" max_connections=3
check "the segment belongs to the database's owner" \
  [ "$(stat -c %U /dev/shm/dbpool."$DBPOOL_NAMESPACE".*."$(printf %x "$(stat -c %i "$db")")".* | head -1)" = daemon ]
check "the owner joins" joins daemon "$db"
check "the owner removes it" as daemon "$ctl" rm "$db"

# 3. chmod after the pool exists.
db=$(newdb chmod.db 0644)
check "the owner makes the pool" joins daemon "$db"
chmod 664 "$db"
check "after chmod 664 the owner joins" joins daemon "$db"
check "and root" joins root "$db"
check "and a reader" joins nobody "file:$db?mode=ro"
check "the owner's rm --force works" as daemon "$ctl" rm --force "$db"

# 4. 0600: closed to others.
db=$(newdb private.db 0600)
check "the owner joins a 0600 database" joins daemon "$db"
seg=$(ls /dev/shm/dbpool."$DBPOOL_NAMESPACE".*."$(printf %x "$(stat -c %i "$db")")".* | head -1)
check "its segment is 0600 daemon's" [ "$(stat -c '%a %U' "$seg")" = "600 daemon" ]
check "another user cannot open the segment" sh -c "! runuser -u nobody -- sh -c 'exec 3<>$seg' 2>/dev/null"
check "nor see the pool" sh -c "! runuser -u nobody -- env DBPOOL_NAMESPACE=$DBPOOL_NAMESPACE $ctl status '$db' >/dev/null 2>&1"

# 5. A holder in another pid namespace.
db=$(newdb container.db 0644)
"$ctl" set "$db" max_connections=1 >/dev/null
if unshare -pf --mount-proc true 2>/dev/null; then
  fifo=$work/fifo; mkfifo "$fifo"
  unshare -pf --mount-proc --kill-child sqlite3 ":memory:" ".load $ext" ".open $db" \
    "SELECT 'holding';" ".shell cat $fifo" > "$work/ns.out" 2>&1 &
  ns=$!
  for _ in $(seq 500); do grep -q holding "$work/ns.out" 2>/dev/null && break; sleep 0.02; done
  status=$("$ctl" status "$db" --json)
  check "the namespaced holder is counted and alive" \
    sh -c "echo '$status' | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); s=d[\"stats\"]; c=d[\"connections\"]; sys.exit(not (s[\"active\"]==1 and s[\"processes\"]==1 and c[0][\"process_state\"]==\"elsewhere\"))'"
  check "rm refuses while it lives" sh -c "! $ctl rm '$db' 2>/dev/null"
  kill -KILL "$ns"; wait "$ns" 2>/dev/null
  out=$(sqlite3 ":memory:" ".load $ext" ".open file:$db?dbpool_timeout=5000" "SELECT 'in';" 2>&1)
  check "its slot comes back when it dies" [ "$out" = in ]
else
  echo "skipped: unshare -pf not permitted"
fi

rm -rf "$work"
rm -f /dev/shm/dbpool."$DBPOOL_NAMESPACE".*
[ "$fails" = 0 ]
