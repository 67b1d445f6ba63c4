#!/usr/bin/env bash
# tests/run.sh -- run dbpool's test suite (called by `make test`).
#
# Runs every C test program in $B/tests, then the SQL, Python and CLI suites
# when their parts are built. Each program cleans up its own pool segments;
# this script checks that none are left in /dev/shm afterwards. Every pool
# namespace of the run starts with $DBPOOL_TEST_RUN, so the check counts only
# this run's segments: other dbpool users on the host (or another run) are
# neither disturbed nor counted.
set -u
B=${B:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
export B PYTHON
cd "$(dirname "$0")/.."

failed=()
run() {
  local name=$1; shift
  local start=$SECONDS
  printf '== %s\n' "$name"
  if "$@"; then
    printf '   %s: ok (%ds)\n' "$name" $((SECONDS - start))
  else
    printf '   %s: FAILED (%ds)\n' "$name" $((SECONDS - start))
    failed+=("$name")
  fi
}

export DBPOOL_TEST_RUN="r$$"
ours() { ls /dev/shm | grep "^dbpool\.$DBPOOL_TEST_RUN" || true; }

for t in "$B"/tests/*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  run "$(basename "$t")" "$t"
done

for suite in tests/suites/*.sh; do
  [ -e "$suite" ] && [ -z "${TEST_ONLY_C:-}" ] || continue
  run "$(basename "$suite" .sh)" bash "$suite"
done

if [ -n "$(ours)" ]; then
  echo "pool segments left behind in /dev/shm:"; ours
  failed+=("shm-leak")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all tests passed"
