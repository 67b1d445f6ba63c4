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
