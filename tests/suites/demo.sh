#!/usr/bin/env bash
# tests/suites/demo.sh -- `make demo` runs and shows what it promises: three
# holders, a waiter that gets in, a timeout with dbpool's message, a SIGKILLed
# holder's slot coming back, and nothing left behind.
set -u
B=${B:-build}
cd "$(dirname "$0")/../.."
out=$(make --no-print-directory demo B="$B" 2>&1)
status=$?
fail=0
expect() {
  if ! grep -Eq -- "$1" <<<"$out"; then
    echo "demo output lacks: $1"; fail=1
  fi
}
[ $status -eq 0 ] || { echo "make demo exited $status"; fail=1; }
expect '^/tmp/dbpool-demo-[^ ]+/app\.db +3 +3 +0 +3 +1\.0'
expect 'active +worker-1'
expect '^[0-9]+ +sqlite3 +waiting'
expect 'active +waiter'
expect 'automatic extension loading failed: dbpool: pool full: all 3 connections to /tmp/dbpool-demo-[^ ]+/app\.db are in use \(waited [0-9]+ ms\)'
expect "the dead worker's slot came back: latecomer got in [0-9]+ ms after the kill"
expect '^3 +0 +5 +1 +1 +1 *$'
expect '^removed the pool of /tmp/dbpool-demo-'
expect '^done\.$'
if ls /dev/shm | grep -q '^dbpool\.demo'; then echo "demo left a pool segment"; fail=1; fi
if ls -d /tmp/dbpool-demo-* >/dev/null 2>&1; then echo "demo left a directory"; fail=1; fi
[ $fail -eq 0 ] && echo "ok   make demo" || { echo "$out"; echo "FAIL make demo"; }
exit $fail
