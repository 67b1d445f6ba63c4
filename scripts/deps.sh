#!/bin/sh
# scripts/deps.sh [GROUP...] -- make sure what dbpool builds and tests with is
# here. As root, installs what is missing with apt-get; otherwise prints the
# one command to run and fails.
#
#   (no group)    building and `make test`: SQLite's headers and shell,
#                 Debian's Python 3 (its sqlite3 module can load extensions),
#                 tmux (dbpoolctl watch tests), pkg-config (install test)
#   integrations  the runtimes of docs/integrations.md's recipes
#                 (tests/integrations skips those that are missing): PHP
#                 (cli, fpm, sqlite3), gunicorn, Flask, Django, SQLAlchemy,
#                 Go with mattn/go-sqlite3, litecli, sqlite-utils; and, when
#                 Node 20 or later and npm are installed, better-sqlite3 from
#                 npm into tests/integrations/node
#   package       building and checking the Debian package (make package):
#                 debhelper, dpkg-dev, fakeroot, lintian
#   coverage      make coverage: gcovr (reads gcc's counters)
#   fuzz          make fuzz, make fuzz-ci: clang with libFuzzer
set -u
missing=""
need() { # need PACKAGE TEST...
  pkg=$1; shift
  "$@" >/dev/null 2>&1 || missing="$missing $pkg"
}
need_pkg() { # need_pkg PACKAGE...: Debian packages checked by dpkg itself
  for pkg in "$@"; do
    need "$pkg" sh -c "dpkg-query -W -f '\${Status}' $pkg | grep -q 'ok installed'"
  done
}
node_modules=0
group() {
  case $1 in
  core)
    need build-essential sh -c 'command -v cc && command -v g++ && command -v make' # g++: tests/suites/abi.sh
    need libsqlite3-dev test -f /usr/include/sqlite3ext.h
    need sqlite3 sh -c 'command -v sqlite3'
    need python3 /usr/bin/python3 -c 'import sqlite3; sqlite3.connect(":memory:").enable_load_extension'
    need tmux sh -c 'command -v tmux'
    need pkg-config sh -c 'command -v pkg-config' ;;
  integrations)
    need_pkg php-cli php-fpm php-sqlite3 gunicorn python3-flask python3-django \
      python3-sqlalchemy golang-go golang-github-mattn-go-sqlite3-dev litecli sqlite-utils
    node_modules=1 ;;
  package)
    need_pkg debhelper dpkg-dev fakeroot lintian ;;
  coverage)
    need gcovr sh -c 'command -v gcovr' ;;
  fuzz)
    need clang sh -c 'command -v clang && echo "int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }" | clang -x c -fsanitize=fuzzer -o /dev/null -' ;;
  *)
    echo "deps: unknown group '$1' (core, integrations, package, coverage, fuzz)" >&2
    exit 2 ;;
  esac
}
[ $# -eq 0 ] && set -- core
for g in "$@"; do group "$g"; done

# better-sqlite3 is no Debian package; it needs Node 20 or later (Debian 12
# ships 18). Installed from the npm registry when that Node is here; the Node
# tests skip, saying so, when it is not.
node_deps() {
  dir=$(dirname "$0")/../tests/integrations/node
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
    echo "deps: no node and npm: the better-sqlite3 tests will be skipped"; return 0; }
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$major" -ge 20 ] || {
    echo "deps: node $major is older than 20: the better-sqlite3 tests will be skipped"
    return 0; }
  NODE_PATH=$dir/node_modules node -e "require('better-sqlite3')" >/dev/null 2>&1 && return 0
  echo "== npm install better-sqlite3 (into tests/integrations/node)"
  (cd "$dir" && npm install --no-audit --no-fund) ||
    echo "deps: npm install failed: the better-sqlite3 tests will be skipped"
}

if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update && apt-get install -y --no-install-recommends $missing; }; then
      echo "deps: apt-get failed" >&2
      exit 1
    fi
  else
    echo "dbpool needs:$missing" >&2
    echo "run:  sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi
[ "$node_modules" = 1 ] && node_deps
exit 0
