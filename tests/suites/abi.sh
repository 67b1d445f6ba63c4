#!/usr/bin/env bash
# tests/suites/abi.sh -- the public contract, as a program that links
# against dbpool sees it:
#  - every public header compiles alone and before or after every other one,
#    as C (gnu11 with -Wall -Wextra -Werror; c99 and c11 with
#    -pedantic-errors) and as C++ (g++ -std=c++11 and -std=c++17 with
#    -Wall -Wextra -Werror), and a program that uses each header's
#    declarations links against the built libdbpool.so;
#  - libdbpool.so exports exactly the symbols of libdbpool.map, each
#    declared DBPOOL_EXTERN in include/, and include/ declares no other;
#  - dbpool.so exports only its two SQLite entry points;
#  - the headers' DBPOOL_VERSION and DBPOOL_VERSION_NUMBER are the
#    library's dbpool_version() and dbpool_version_number().
set -u
B=${B:-build}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d /tmp/dbpool-abi-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok   $1"; }
fail() { echo "FAIL $1"; status=1; }

headers=$(cd include && ls *.h)
compile() { # $1: label, $2: source, rest: compiler and flags
  local label=$1 src=$2; shift 2
  if "$@" -Iinclude -fsyntax-only "$src" 2> "$tmp/err"; then return 0; fi
  fail "$label: $*"; sed 's/^/     /' "$tmp/err"; return 1
}
n=0
for mode in "gcc -std=gnu11 -Wall -Wextra -Werror" \
            "gcc -std=c99 -pedantic-errors -Wall -Wextra -Werror" \
            "gcc -std=c11 -pedantic-errors -Wall -Wextra -Werror" \
            "g++ -x c++ -std=c++11 -Wall -Wextra -Werror" \
            "g++ -x c++ -std=c++17 -Wall -Wextra -Werror"; do
  for a in $headers; do
    printf '#include <%s>\nint main(void) { return 0; }\n' "$a" > "$tmp/alone.c"
    compile "$a alone" "$tmp/alone.c" $mode && n=$((n + 1))
    for b in $headers; do
      [ "$a" = "$b" ] && continue
      printf '#include <%s>\n#include <%s>\nint main(void) { return 0; }\n' "$a" "$b" > "$tmp/pair.c"
      compile "$a then $b" "$tmp/pair.c" $mode && n=$((n + 1))
    done
  done
done
[ $status -eq 0 ] && ok "headers compile alone and in every order of two ($n builds)"

# A program using the declarations of every header, built as C and as C++,
# linked against the shared library and run.
cat > "$tmp/use.c" <<'PROG'
#include <dbpool.h>
#include <dbpool_admin.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
  dbpool_host_stats hs;
  dbpool_stats ps;
  dbpool_config cfg;
  dbpool_config_init(&cfg);
  (void)hs; (void)ps;
  if (dbpool_version_number() != DBPOOL_VERSION_NUMBER) return 1;
  if (strcmp(dbpool_version(), DBPOOL_VERSION) != 0) return 2;
  if (dbpool_setting_lookup("max_connections") != DBPOOL_SETTING_MAX_CONNECTIONS) return 3;
  if (!dbpool_setting_describe(DBPOOL_SETTING_PAUSED)) return 4;
  printf("%s %d\n", dbpool_version(), dbpool_version_number());
  return 0;
}
PROG
for cc in "gcc -std=c99" "g++ -x c++ -std=c++11"; do
  if $cc -Wall -Wextra -Werror -Iinclude "$tmp/use.c" -o "$tmp/use" -x none -L"$B" -ldbpool -lsqlite3 \
       2> "$tmp/err" && LD_LIBRARY_PATH="$B" "$tmp/use" > "$tmp/out"; then
    ok "a program using the headers links and runs ($cc): $(cat "$tmp/out")"
  else
    fail "a program using the headers ($cc)"; cat "$tmp/err"
  fi
done

# Exported symbols: libdbpool.map, nm -D, include/.
sed -e 's|/\*.*\*/||g' libdbpool.map | grep -o '^ *dbpool_[a-z0-9_]*;' | tr -d ' ;' | sort > "$tmp/map"
nm -D --defined-only "$B/libdbpool.so" | awk '{print $3}' | sort > "$tmp/nm"
grep -ho '^DBPOOL_EXTERN[^(]*(' include/*.h | sed 's/($//; s/.*[ *]//' | sort > "$tmp/decl"
if diff -u "$tmp/map" "$tmp/nm" > "$tmp/d1"; then
  ok "libdbpool.so exports exactly libdbpool.map ($(wc -l < "$tmp/map") symbols)"
else
  fail "libdbpool.so's exports differ from libdbpool.map (- map, + nm -D)"; cat "$tmp/d1"
fi
if diff -u "$tmp/map" "$tmp/decl" > "$tmp/d2"; then
  ok "include/ declares DBPOOL_EXTERN exactly the symbols of libdbpool.map"
else
  fail "include/'s DBPOOL_EXTERN declarations differ from libdbpool.map (- map, + headers)"
  cat "$tmp/d2"
fi
ext=$(nm -D --defined-only "$B/dbpool.so" | awk '{print $3}' | sort | tr '\n' ' ')
if [ "$ext" = "sqlite3_dbpool_init sqlite3_dbpool_preload_init " ]; then
  ok "dbpool.so exports only its entry points"
else
  fail "dbpool.so exports: $ext"
fi
exit $status
