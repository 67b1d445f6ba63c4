#!/usr/bin/env bash
# tests/valgrind.sh -- the C test programs ($B/tests/*) under valgrind's
# memcheck (make valgrind). Fails on any memcheck error -- an invalid read
# or write, a use of uninitialised memory, a bad free -- in the program or
# in any process it forks (valgrind follows forks). Leaks are not counted
# here: several tests end processes that hold memory on purpose (a
# process dying with its records), and LSan checks leaks in the sanitizer
# builds (make test-c SANITIZE=address,undefined). Under memcheck
# everything runs 20 to 50 times slower: the tests' deadlines, timeouts
# that must be met, poll counts and alarms are multiplied by
# DBPOOL_TEST_SLOWDOWN (30 here; tu_slowdown() in tests/lib/testutil.h),
# so a program must pass its own checks too. A test that failed only its
# own checks (no memcheck error) is reported apart.
# VALGRIND_TESTS="unit crash-recovery" runs only those.
set -u
B=${B:-build}
cd "$(dirname "$0")/.."
export DBPOOL_TEST_RUN="vg$$"
export DBPOOL_TEST_SLOWDOWN="${DBPOOL_TEST_SLOWDOWN:-30}"
log_dir=$(mktemp -d /tmp/dbpool-valgrind-XXXXXX)
errors=() failed=()
for t in "$B"/tests/*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  name=$(basename "$t")
  if [ -n "${VALGRIND_TESTS:-}" ] && ! [[ " $VALGRIND_TESTS " == *" $name "* ]]; then
    continue
  fi
  start=$SECONDS
  valgrind --error-exitcode=99 --leak-check=no --child-silent-after-fork=no \
    --log-file="$log_dir/$name.%p" "$t" > "$log_dir/$name.out" 2>&1
  rc=$?
  n=$(cat "$log_dir/$name".[0-9]* 2>/dev/null | grep -o "ERROR SUMMARY: [0-9]*" |
      awk '{s += $3} END {print s + 0}')
  if [ "$n" -gt 0 ]; then
    errors+=("$name"); echo "FAIL $name: $n memcheck errors ($((SECONDS - start)) s)"
    grep -h -A12 "^==[0-9]*== [A-Z][a-z]" "$log_dir/$name".[0-9]* | head -60
  elif [ $rc -ne 0 ]; then
    failed+=("$name"); echo "FAIL $name: its checks failed under memcheck, no memcheck error ($((SECONDS - start)) s)"
    grep "^FAIL\|: \[" "$log_dir/$name.out" | head -10
  else
    echo "ok   $name: 0 memcheck errors ($((SECONDS - start)) s)"
  fi
done
for seg in /dev/shm/dbpool."$DBPOOL_TEST_RUN"*; do [ -e "$seg" ] && rm -f "$seg"; done
rm -rf "$log_dir"
echo "memcheck errors in: ${errors[*]:-none}; checks failed under valgrind in: ${failed[*]:-none}"
[ ${#errors[@]} -eq 0 ] && [ ${#failed[@]} -eq 0 ]
