#!/usr/bin/env bash
# tests/suites/integrations.sh -- the recipes of docs/integrations.md, run in
# the runtimes they are for (Python with Flask, Django, SQLAlchemy; gunicorn;
# php-cli and php-fpm; Go; Node with better-sqlite3; the sqlite3 shell,
# litecli, sqlite-utils). A runtime that is not installed is skipped with the
# packages to install (make deps-integrations installs them all); the list of
# what was skipped is printed at the end.
set -u
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
log=$(mktemp)
"$PYTHON" -m unittest discover -s tests/integrations -p 'test_*.py' -v 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
skipped=$(grep -c "skipped '" "$log")
if [ "$skipped" -gt 0 ]; then
  echo "integrations: $skipped skipped:"
  sed -n "s/.*skipped '\(.*\)'$/  \1/p" "$log" | sort | uniq -c
fi
rm -f "$log"
exit "$status"
