#!/usr/bin/env bash
# tests/package.sh -- the Debian source package builds, its binary packages
# hold what they should and are lintian clean, and what they install works
# (called by `make test-package`, which .ci/run runs after `make test`; not
# part of `make test`: it needs debhelper and lintian, and a minute or two).
#
# Builds with `dpkg-buildpackage -us -uc` in a copy of the tree, checks each
# package's file list and dependencies, runs lintian (no error, no warning),
# then unpacks the packages into a temporary root and uses them from there:
# `.load dbpool` by bare name, `dbpoolctl run`, a program built with
# pkg-config against libdbpool-dev.
set -u
cd "$(dirname "$0")/.."
version=$(cat VERSION)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
lib=usr/lib/$multiarch
tmp=$(mktemp -d /tmp/dbpool-package-XXXXXX)
fail=0
check() { if ! eval "$1"; then echo "package: failed: $1"; fail=1; fi; }
trap 'rm -rf "$tmp"; rm -f /dev/shm/dbpool."${DBPOOL_NAMESPACE:-x}".*' EXIT

check "[ \"\$(dpkg-parsechangelog -S Version)\" = '$version' ]"

# A copy of what git tracks (and new files it does not ignore): no build trees.
src=$tmp/dbpool-$version
mkdir "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -co --exclude-standard | tar -c -T - | tar -x -C "$src"
else
  tar -c --exclude='./build*' --exclude=node_modules . | tar -x -C "$src"
fi
start=$SECONDS
if ! (cd "$src" && DEB_BUILD_OPTIONS=parallel=2 dpkg-buildpackage -us -uc >"$tmp/build.log" 2>&1); then
  tail -30 "$tmp/build.log"
  echo "FAIL package: dpkg-buildpackage failed"
  exit 1
fi
echo "   dpkg-buildpackage: $((SECONDS - start)) s"

# What each package holds (directories, doc and lintian files aside).
contents() { dpkg-deb -c "$tmp/$1_${version}_$arch.deb" | awk '{print $6 $7 $8}' |
             sed 's|^\./||' | grep -v -e '^$' -e '/$' -e '^usr/share/doc/' -e '^usr/share/lintian/' | sort | tr '\n' ' '; }
check "[ \"\$(contents libdbpool1)\" = '$lib/libdbpool.so.1->libdbpool.so.$version $lib/libdbpool.so.$version ' ]"
check "[ \"\$(contents libdbpool-dev)\" = 'usr/include/dbpool.h usr/include/dbpool_admin.h usr/include/dbpool_coord.h usr/include/dbpool_version.h $lib/libdbpool.a $lib/libdbpool.so->libdbpool.so.1 $lib/pkgconfig/dbpool.pc usr/share/man/man3/dbpool.3.gz ' ]"
check "[ \"\$(contents sqlite3-dbpool)\" = 'usr/bin/dbpoolctl $lib/dbpool.so $lib/dbpool/dbpool.so->../dbpool.so $lib/dbpool/libdbpool-preload.so usr/share/man/man1/dbpoolctl.1.gz usr/share/man/man7/dbpool.7.gz ' ]"
# The extension and dbpoolctl never link libsqlite3 (the extension uses the
# loading program's SQLite); the C library does.
field() { dpkg-deb -f "$tmp/$1_${version}_$arch.deb" "$2"; }
check "! field sqlite3-dbpool Depends | grep -q sqlite"
check "field libdbpool1 Depends | grep -q 'libsqlite3-0'"
check "field libdbpool-dev Depends | grep -q 'libdbpool1 (= $version)'"

start=$SECONDS
lintian --fail-on error,warning "$tmp/dbpool_${version}_$arch.changes" >"$tmp/lintian.log" 2>&1
status=$?
check "[ $status = 0 ]"
check "! grep -E '^(E|W): ' '$tmp/lintian.log'"
echo "   lintian: $((SECONDS - start)) s"

# Unpacked into a temporary root and used from there.
root=$tmp/root
for p in libdbpool1 libdbpool-dev sqlite3-dbpool; do
  dpkg-deb -x "$tmp/${p}_${version}_$arch.deb" "$root"
done
export DBPOOL_NAMESPACE="${DBPOOL_TEST_RUN:-}pkg$$"
db=$tmp/app.db
sqlite3 "$db" "CREATE TABLE t(x)"
out=$(cd / && LD_LIBRARY_PATH="$root/$lib" sqlite3 "$db" ".load dbpool" \
      "SELECT dbpool_version(), joined FROM pool_connections WHERE current")
check "[ '$out' = '$version|load' ]"
out=$(env -u DBPOOL_PRELOAD -u DBPOOL_EXTENSION "$root/usr/bin/dbpoolctl" run -- \
      sqlite3 "$db" "SELECT joined FROM pool_connections WHERE current")
check "[ '$out' = preload ]"
cat > "$tmp/prog.c" <<'C'
#include <stdio.h>
#include <dbpool.h>
int main(void) { printf("%s\n", dbpool_version()); return 0; }
C
flags=$(PKG_CONFIG_PATH="$root/$lib/pkgconfig" pkg-config --define-variable=prefix="$root/usr" \
        --cflags --libs dbpool)
check "cc '$tmp/prog.c' -o '$tmp/prog' $flags"
check "[ \"\$(LD_LIBRARY_PATH='$root/$lib' '$tmp/prog')\" = '$version' ]"
check "'$root/usr/bin/dbpoolctl' rm '$db' >/dev/null"

[ $fail -eq 0 ] && echo "ok   package" || { cat "$tmp/lintian.log"; echo "FAIL package"; }
exit $fail
