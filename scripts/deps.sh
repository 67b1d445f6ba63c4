#!/bin/sh
# scripts/deps.sh -- make sure what dbpool builds and tests with is here:
# SQLite's headers and shell, Debian's Python 3 (its sqlite3 module can load
# extensions), tmux (dbpoolctl watch tests) and pkg-config (install test).
# As root, installs what is missing with apt-get; otherwise prints the one
# command to run and fails.
set -u
missing=""
need() { # need PACKAGE TEST...
  pkg=$1; shift
  "$@" >/dev/null 2>&1 || missing="$missing $pkg"
}
need build-essential sh -c 'command -v cc && command -v make'
need libsqlite3-dev test -f /usr/include/sqlite3ext.h
need sqlite3 sh -c 'command -v sqlite3'
need python3 /usr/bin/python3 -c 'import sqlite3; sqlite3.connect(":memory:").enable_load_extension'
need tmux sh -c 'command -v tmux'
need pkg-config sh -c 'command -v pkg-config'
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update && apt-get install -y --no-install-recommends $missing && exit 0
  echo "deps: apt-get failed" >&2
  exit 1
fi
echo "dbpool needs:$missing" >&2
echo "run:  sudo apt-get install -y$missing" >&2
exit 1
