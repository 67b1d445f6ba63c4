#!/usr/bin/env bash
# bench/run.sh -- print dbpool's benchmark figures (called by `make bench`).
# Every figure is printed next to a bare primitive measured in the same run;
# on this noisy 2-vCPU machine, read the ratios. BENCH_QUICK=1 shortens runs.
set -eu
B=${B:-build}
cd "$(dirname "$0")/.."
mode=${BENCH_QUICK:+quick}
for b in "$B"/bench/*; do
  [ -x "$b" ] && [ -f "$b" ] || continue
  "$b" $mode
  echo
done

# The writer queue as Python users of the extension see it.
if [ -x /usr/bin/python3 ] && [ -f "$B/dbpool.so" ]; then
  B=$B /usr/bin/python3 bench/writer_python.py $mode
  echo
fi
# An application server: the Flask recipe of docs/integrations.md under
# gunicorn, without and with dbpool (skipped without gunicorn and Flask).
B=$B /usr/bin/python3 bench/appserver.py
echo

# Instruction counts are exact where timings are noisy: the extension's cost
# on a point SELECT, counted by callgrind inside the SELECT loop alone.
count() { # count BINARY FUNCTION MODE: instructions inside FUNCTION
  local out; out=$(mktemp)
  B=$B valgrind --tool=callgrind --toggle-collect="$2" \
    --callgrind-out-file="$out" "$1" count "$3" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' "$out"; rm -f "$out"
}
if command -v valgrind >/dev/null && [ -x "$B/bench/pool_bench" ]; then
  ours=$(count "$B/bench/pool_bench" time_ours ours)
  naive=$(count "$B/bench/pool_bench" time_naive naive)
  if [ -n "$ours" ] && [ -n "$naive" ]; then
    awk -v a="$naive" -v b="$ours" 'BEGIN { printf "pool acquire+release, instructions per pair (callgrind): naive %.0f, dbpool %.0f   ratio %.2fx\n", a/100000, b/100000, b/a }'
  fi
fi
if command -v valgrind >/dev/null && [ -x "$B/bench/coord_bench" ]; then
  ours=$(count "$B/bench/coord_bench" 'time_pairs*' ours)
  sem=$(count "$B/bench/coord_bench" 'time_sem_pairs*' sem)
  if [ -n "$ours" ] && [ -n "$sem" ]; then
    awk -v a="$sem" -v b="$ours" 'BEGIN { printf "coordinator acquire+release, instructions per pair (callgrind): sem_trywait+sem_post %.0f, dbpool %.0f   ratio %.2fx\n", a/100000, b/100000, b/a }'
  fi
fi
if command -v valgrind >/dev/null && [ -x "$B/bench/ext_bench" ]; then
  plain=$(count "$B/bench/ext_bench" point_selects plain)
  pooled=$(count "$B/bench/ext_bench" point_selects pooled)
  if [ -n "$plain" ] && [ -n "$pooled" ]; then
    awk -v a="$plain" -v b="$pooled" 'BEGIN { printf "point SELECT, instructions per query (callgrind): without %.0f, with %.0f   overhead %+.2f%%   (goal <= 2%%)\n", a/20000, b/20000, (b/a-1)*100 }'
  fi
  # Open + close: 2000 of them after a warm-up (ext_bench.c).
  plain=$(count "$B/bench/ext_bench" 'open_close_counted*' open-plain)
  pooled=$(count "$B/bench/ext_bench" 'open_close_counted*' open-pooled)
  if [ -n "$plain" ] && [ -n "$pooled" ]; then
    awk -v a="$plain" -v b="$pooled" 'BEGIN { printf "open + close, instructions per open (callgrind): without %.0f, with %.0f   %+.0f (%.3fx)\n", a/2000, b/2000, (b-a)/2000, b/a }'
  fi
fi
