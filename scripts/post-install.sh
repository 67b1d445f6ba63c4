#!/bin/sh
# scripts/post-install.sh DESTDIR LIBDIR EXTDIR LDCONFIG -- the end of
# `make install`: make the installed libraries findable, or say exactly what
# to do.
#
# 1. libdbpool.so.1 (programs linked with -ldbpool) is found through the
#    loader's cache: as root, installing into a directory the loader is
#    configured for (/etc/ld.so.conf), run LDCONFIG; otherwise print what to
#    run. A staging install (DESTDIR) runs nothing: the package's own
#    installation (a postinst, dpkg's trigger) does.
# 2. dbpool.so (the SQLite extension) is found by a bare `.load dbpool` only
#    in the system library directories, which the cache does not help with
#    (ldconfig caches lib*.so names only): say whether EXTDIR is one, and if
#    not, the three ways to load it.
set -u
destdir=$1 libdir=$2 extdir=$3 ldconfig=$4

canon() { # an absolute path with no . or .. and no symlinks, when it exists
  (cd "$1" 2>/dev/null && pwd -P) || echo "$1"
}
# Directories the loader's configuration covers (ldconfig -N: read only).
configured=$( (ldconfig -v -N -X 2>/dev/null || /sbin/ldconfig -v -N -X 2>/dev/null) |
             sed -n 's|^\(/[^:]*\):.*|\1|p')
# Directories dlopen searches for a name without a slash, from the loader
# itself (glibc 2.33+ lists them), else the usual ones.
interp=$(readelf -l /bin/sh 2>/dev/null | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
system=$("${interp:-/nonexistent}" --help 2>/dev/null | sed -n 's|^  \(/[^ ]*\) (system search path)$|\1|p')
if [ -z "$system" ]; then
  arch=$(${CC:-cc} -print-multiarch 2>/dev/null)
  system="/lib /usr/lib /lib64 /usr/lib64${arch:+ /lib/$arch /usr/lib/$arch}"
fi
member() { # member DIR LIST
  d=$(canon "$1")
  for x in $2; do [ "$(canon "$x")" = "$d" ] && return 0; done
  return 1
}

if [ -n "$destdir" ]; then
  echo "install: staged in DESTDIR=$destdir: run ldconfig once it is installed for real (packages do)"
elif member "$libdir" "$configured"; then
  if [ "$(id -u)" = 0 ]; then
    if $ldconfig; then
      echo "install: ran $ldconfig: programs linked with -ldbpool find libdbpool.so.1"
    else
      echo "install: '$ldconfig' failed: run ldconfig as root so that programs find libdbpool.so.1"
    fi
  else
    echo "install: run 'sudo ldconfig' so that programs linked with -ldbpool find libdbpool.so.1"
  fi
else
  echo "install: $libdir is not in the loader's configuration: programs linked with -ldbpool"
  echo "  need LD_LIBRARY_PATH=$libdir, or $libdir in a file of /etc/ld.so.conf.d/ and 'ldconfig'"
fi

if member "$extdir" "$system"; then
  echo "install: the SQLite extension is $extdir/dbpool.so: '.load dbpool' works from anywhere"
else
  usr=$(for x in $system; do case $x in /usr/lib*) echo "$x"; break ;; esac; done)
  echo "install: the SQLite extension is $extdir/dbpool.so. A bare '.load dbpool' searches only"
  echo "  LD_LIBRARY_PATH and the system library directories ($(echo $system)); so:"
  echo "    .load $extdir/dbpool                     (by its path), or"
  echo "    export LD_LIBRARY_PATH=$extdir   (then '.load dbpool'), or"
  echo "    make install EXTDIR=${usr:-/usr/lib}   (the extension in a system directory)"
fi
exit 0
