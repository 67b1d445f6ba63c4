#!/usr/bin/env bash
# tests/suites/faults.sh -- fault injection (tests/fault/driver.c): every
# operation of dbpool with its Nth allocation or system call failing, on the
# fault build (build-fault/: ASan, UBSan, LSan), in the driver's quick mode
# (about two minutes; FAULT_FULL=1 in the environment fails every call).
# Only the plain build's run does it: the sanitizer and coverage builds'
# runs have their own B, and the fault build is its own build anyway.
set -u
cd "$(dirname "$0")/../.."
if [ "${B:-build}" != build ]; then
  echo "skip: fault injection runs in the plain build's make test (B=$B)"
  exit 0
fi
log=$(mktemp /tmp/dbpool-faultbuild-XXXXXX)
# A make of its own (B unset: FAULT=1 picks build-fault/), not the caller's jobs.
if ! env -u B -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -j2 FAULT=1 \
    build-fault/tests/faults >"$log" 2>&1; then
  tail -40 "$log"; rm -f "$log"
  echo "FAIL faults: the fault build failed"
  exit 1
fi
rm -f "$log"
exec build-fault/tests/faults
