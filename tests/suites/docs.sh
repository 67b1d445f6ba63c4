#!/usr/bin/env bash
# tests/suites/docs.sh -- everything the code has is in the docs.
cd "$(dirname "$0")/../.."
exec "${PYTHON:-/usr/bin/python3}" tests/docs/check_docs.py
