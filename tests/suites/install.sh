#!/usr/bin/env bash
# tests/suites/install.sh -- `make install` into a temporary DESTDIR, used
# from there: the extension loaded by its bare name (with the library path
# set), a program compiled with `pkg-config --cflags --libs dbpool` and run,
# dbpoolctl and `dbpoolctl run`, the man pages; then `make uninstall` leaves
# nothing behind. What install says about ldconfig and `.load dbpool`, and
# that following what it says works: a staged install, one into a system
# library directory (EXTDIR), one straight into a temporary PREFIX.
set -u
B=${B:-build}
cd "$(dirname "$0")/../.."
dest=$(mktemp -d /tmp/dbpool-install-XXXXXX)
prefix=/opt/dbpool-test
root=$dest$prefix
version=$(cat VERSION)
fail=0
check() { if ! eval "$1"; then echo "install: failed: $1"; fail=1; fi; }
trap 'rm -rf "$dest"' EXIT

said=$(make --no-print-directory install B="$B" DESTDIR="$dest" PREFIX="$prefix" | grep -A4 '^install:') ||
  { echo "make install failed"; exit 1; }
check "echo \"\$said\" | grep -q 'install: staged in DESTDIR=$dest: run ldconfig once'"
check "echo \"\$said\" | grep -qF '    .load $prefix/lib/dbpool '"
check "echo \"\$said\" | grep -qF '    export LD_LIBRARY_PATH=$prefix/lib '"
for f in bin/dbpoolctl lib/dbpool.so lib/libdbpool.a "lib/libdbpool.so.$version" \
         lib/dbpool/libdbpool-preload.so lib/dbpool/dbpool.so \
         lib/libdbpool.so.1 lib/libdbpool.so include/dbpool.h include/dbpool_coord.h \
         include/dbpool_admin.h include/dbpool_version.h \
         lib/pkgconfig/dbpool.pc share/man/man1/dbpoolctl.1 share/man/man3/dbpool.3 \
         share/man/man7/dbpool.7; do
  check "[ -e '$root/$f' ]"
done
check "[ \"\$(readelf -d '$root/lib/libdbpool.so.$version' | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')\" = libdbpool.so.1 ]"

export DBPOOL_NAMESPACE="${DBPOOL_TEST_RUN:-}inst$$"
work=$dest/work; mkdir -p "$work"
sqlite3 "$work/app.db" "CREATE TABLE t(x)"
# The extension by its bare name, from another directory.
out=$(cd "$work" && LD_LIBRARY_PATH="$root/lib" sqlite3 app.db ".load dbpool" \
      "SELECT dbpool_version(), active FROM pool_stats WHERE database = '$work/app.db'")
check "[ '$out' = '$version|1' ]"

# A C program built with pkg-config against the installed tree.
cat > "$work/prog.c" <<'C'
#include <stdio.h>
#include <dbpool.h>
int main(int argc, char **argv)
{
  dbpool *pool;
  sqlite3 *db;
  dbpool_host_stats hs;
  DBPOOL_INIT(&hs);
  if (dbpool_open(argv[1], NULL, &pool) != SQLITE_OK) return 1;
  if (dbpool_acquire(pool, &db) != SQLITE_OK) return 2;
  if (dbpool_get_host_stats(pool, &hs) != SQLITE_OK) return 3;
  printf("%s active=%u\n", dbpool_version(), hs.active);
  dbpool_release(pool, db);
  return dbpool_close(pool) == SQLITE_OK ? 0 : 4;
}
C
flags=$(PKG_CONFIG_PATH="$root/lib/pkgconfig" pkg-config --define-variable=prefix="$root" \
        --cflags --libs dbpool) || { echo "pkg-config failed"; fail=1; }
cc "$work/prog.c" -o "$work/prog" $flags || { echo "compiling with pkg-config failed"; fail=1; }
out=$(LD_LIBRARY_PATH="$root/lib" "$work/prog" "$work/app.db")
check "[ '$out' = '$version active=1' ]"
check "[ \"\$('$root/bin/dbpoolctl' --version)\" = 'dbpoolctl $version' ]"
# dbpoolctl run finds the installed preload library (../lib/dbpool from its
# directory), which finds the extension through its link.
out=$(cd "$work" && env -u DBPOOL_PRELOAD -u DBPOOL_EXTENSION "$root/bin/dbpoolctl" run -- \
      sqlite3 app.db "SELECT joined, dbpool_version() FROM pool_connections WHERE current")
check "[ '$out' = 'preload|$version' ]"
check "'$root/bin/dbpoolctl' rm '$work/app.db' >/dev/null"
check "grep -q 'dbpool $version' '$root/share/man/man1/dbpoolctl.1'"

make --no-print-directory uninstall B="$B" DESTDIR="$dest" PREFIX="$prefix" >/dev/null
left=$(find "$root" -type f -o -type l 2>/dev/null)
check "[ -z '$left' ]"

# The extension in a system library directory: a bare '.load dbpool' works
# there, and the preload library's link points at it.
multiarch=$(cc -print-multiarch)
said=$(make --no-print-directory install B="$B" DESTDIR="$dest" PREFIX="$prefix" \
       EXTDIR=/usr/lib/$multiarch | grep '^install:')
check "echo \"\$said\" | grep -qF \"install: the SQLite extension is /usr/lib/$multiarch/dbpool.so: '.load dbpool' works from anywhere\""
check "[ -f '$dest/usr/lib/$multiarch/dbpool.so' ]"
check "[ \"\$(readlink '$root/lib/dbpool/dbpool.so')\" = /usr/lib/$multiarch/dbpool.so ]"
make --no-print-directory uninstall B="$B" DESTDIR="$dest" PREFIX="$prefix" EXTDIR=/usr/lib/$multiarch >/dev/null
left=$(find "$dest" -type f -o -type l 2>/dev/null | grep -v "^$work/")
check "[ -z '$left' ]"

# Straight into a PREFIX (no DESTDIR), as a user would: what it says, and
# that doing what it says works. LDCONFIG records instead of running.
direct=$dest/direct
said=$(make --no-print-directory install B="$B" PREFIX="$direct" LDCONFIG="touch $dest/ldconfig-ran" |
       grep -A4 '^install:')
check "echo \"\$said\" | grep -qF 'install: $direct/lib is not in the loader'\''s configuration'"
check "[ ! -e '$dest/ldconfig-ran' ]"
out=$(cd / && sqlite3 :memory: ".load $direct/lib/dbpool" "SELECT dbpool_version()")
check "[ '$out' = '$version' ]"
out=$(cd / && LD_LIBRARY_PATH="$direct/lib" sqlite3 :memory: ".load dbpool" "SELECT dbpool_version()")
check "[ '$out' = '$version' ]"
out=$(cd "$work" && env -u DBPOOL_PRELOAD -u DBPOOL_EXTENSION "$direct/bin/dbpoolctl" run -- \
      sqlite3 app.db "SELECT joined FROM pool_connections WHERE current")
check "[ '$out' = preload ]"
make --no-print-directory uninstall B="$B" PREFIX="$direct" >/dev/null
left=$(find "$direct" -type f -o -type l 2>/dev/null)
check "[ -z '$left' ]"
# A LIBDIR the loader is configured for: ldconfig runs as root, else is
# printed (the script alone, so that the test installs nothing there).
configured=$(ldconfig -v -N -X 2>/dev/null | sed -n 's|^\(/[^:]*\):.*|\1|p' | head -1)
said=$(scripts/post-install.sh "" "$configured" "$configured" "touch $dest/ldconfig-ran")
if [ "$(id -u)" = 0 ]; then
  check "[ -e '$dest/ldconfig-ran' ]"
  check "echo \"\$said\" | grep -qF 'install: ran touch $dest/ldconfig-ran: programs linked with -ldbpool find libdbpool.so.1'"
else
  check "echo \"\$said\" | grep -qF \"install: run 'sudo ldconfig'\""
fi
rm -f /dev/shm/dbpool."$DBPOOL_NAMESPACE".*
[ $fail -eq 0 ] && echo "ok   install" || echo "FAIL install"
exit $fail
