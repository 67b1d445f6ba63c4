#!/usr/bin/env bash
# tests/suites/sql.sh -- run every tests/sql/NAME.sql through the real
# sqlite3 shell against a fresh database and compare everything it prints
# (stdout and stderr, so exact error messages) with tests/sql/NAME.expected.
# "@EXT@" in a script is the extension's path and "@DIR@" the temporary
# directory holding test.db, which the output shows as $DIR. UPDATE_EXPECTED=1 rewrites the expected files.
set -u
B=${B:-build}
cd "$(dirname "$0")/../.."
ext=$(realpath "$B/dbpool.so"); ext=${ext%.so}
export DBPOOL_NAMESPACE="${DBPOOL_TEST_RUN:-}sql$$"
unset DBPOOL_MAX_CONNECTIONS DBPOOL_ACQUIRE_TIMEOUT_MS
status=0
for script in tests/sql/*.sql; do
  name=$(basename "$script" .sql)
  dir=$(mktemp -d /tmp/dbpool-sql-XXXXXX)
  sqlite3 "$dir/test.db" "CREATE TABLE t(x); INSERT INTO t VALUES (1);"
  sed -e "s|@EXT@|$ext|g" -e "s|@DIR@|$dir|g" "$script" > "$dir/script.sql"
  (cd "$dir" && sqlite3 -batch test.db < script.sql 2>&1) | sed "s|$dir|\$DIR|g" > "$dir/out"
  if [ -n "${UPDATE_EXPECTED:-}" ]; then
    cp "$dir/out" "tests/sql/$name.expected"
  elif diff -u "tests/sql/$name.expected" "$dir/out"; then
    echo "ok   sql/$name"
  else
    echo "FAIL sql/$name"; status=1
  fi
  rm -rf "$dir"
  rm -f /dev/shm/dbpool."$DBPOOL_NAMESPACE".*
done
exit $status
