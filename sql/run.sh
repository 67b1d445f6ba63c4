#!/bin/sh
# sql/run.sh -- run one of dbpool's operator scripts (sql/*.sql) through the
# sqlite3 shell.
#
#   sql/run.sh SCRIPT [NAME=VALUE]...
#   sql/run.sh sql/drain.sql db=/srv/app.db timeout_ms=30000
#
# It does what you would type, nothing more: opens :memory: (a connection
# that holds no slot, so the scripts work when the pool is full), loads the
# extension ($DBPOOL_EXT, else the installed `dbpool`), sets each NAME=VALUE
# as the SQL parameter @NAME (db= is made an absolute path, as pool_stats
# records it), prints results as columns with headers, and reads SCRIPT:
#
#   sqlite3 -header -column -cmd '.load dbpool' \
#           -cmd ".parameter set @db '/srv/app.db'" :memory: < sql/drain.sql
#
# Exit status: the shell's, 1 when a statement failed (a wait that timed
# out, an invalid value, a missing pool), after the script ran to its end.
set -u
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: sql/run.sh SCRIPT [NAME=VALUE]..." >&2
  exit 2
fi
script=$1; shift
# The parameters first (rotated through "$@"), then the fixed options.
n=$#
while [ $n -gt 0 ]; do
  arg=$1; shift; n=$((n - 1))
  case $arg in
    *=*)
      name=${arg%%=*}; value=${arg#*=}
      [ "$name" = db ] && value=$(realpath -m -- "$value")
      quoted=$(printf '%s' "$value" | sed "s/'/''/g")
      set -- "$@" -cmd ".parameter set @$name '$quoted'" ;;
    *) echo "sql/run.sh: expected NAME=VALUE, got '$arg'" >&2; exit 2 ;;
  esac
done
exec sqlite3 -header -column -cmd ".load ${DBPOOL_EXT:-dbpool}" "$@" :memory: < "$script"
