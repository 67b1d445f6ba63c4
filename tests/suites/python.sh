#!/usr/bin/env bash
# tests/suites/python.sh -- the extension in real processes: sqlite3 shells
# and Debian's Python (whose sqlite3 module can load extensions).
set -u
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
exec "$PYTHON" -m unittest discover -s tests/ext -p 'test_*.py' -v
