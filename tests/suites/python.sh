#!/usr/bin/env bash
# tests/suites/python.sh -- the extension in real processes: sqlite3 shells
# and Debian's Python (whose sqlite3 module can load extensions).
set -u
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
status=0
for dir in tests/ext tests/cli; do
  "$PYTHON" -m unittest discover -s "$dir" -p 'test_*.py' -v || status=1
done
exit $status
