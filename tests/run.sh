#!/usr/bin/env bash
# tests/run.sh -- run dbpool's test suite (called by `make test`).
#
# Runs every C test program in $B/tests, then the SQL, Python and CLI suites
# when their parts are built. Each program cleans up its own pool segments;
# this script checks that none are left in /dev/shm afterwards.
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

shm_before=$(ls /dev/shm | grep -c '^dbpool\.' || true)

for t in "$B"/tests/*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  run "$(basename "$t")" "$t"
done

for suite in tests/suites/*.sh; do
  [ -e "$suite" ] && [ -z "${TEST_ONLY_C:-}" ] || continue
  run "$(basename "$suite" .sh)" bash "$suite"
done

shm_after=$(ls /dev/shm | grep -c '^dbpool\.' || true)
if [ "$shm_after" -gt "$shm_before" ]; then
  echo "pool segments left behind in /dev/shm:"; ls /dev/shm | grep '^dbpool\.'
  failed+=("shm-leak")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all tests passed"
