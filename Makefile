# dbpool -- a host-wide connection cap for SQLite.
#
#   make            build everything into build/
#   make demo       a multi-process demonstration on a temporary database
#   make test       install what is missing (as root), build, run the suite
#   make deps-integrations   also the runtimes the recipe tests use (PHP, Go, ...)
#   make test-package        build the Debian packages (debian/), lintian, use them
#   make bench      print benchmark figures (ratios measured in one run)
#   make install    into $(DESTDIR)$(PREFIX); make uninstall removes it
#   make products   only what is installed (no tests, no benchmarks)
#   make clean
#
# Respects CC, CPPFLAGS, CFLAGS, LDFLAGS, PREFIX, DESTDIR, WERROR (1: warnings
# are errors, the default; 0 for packagers on newer compilers), and BINDIR,
# LIBDIR, INCLUDEDIR, MANDIR, EXTDIR (where the SQLite extension dbpool.so
# goes: LIBDIR unless given; a system library directory such as
# /usr/lib/x86_64-linux-gnu makes `.load dbpool` work by bare name), LDCONFIG. SANITIZE=address,undefined or
# SANITIZE=thread builds everything with that sanitizer (into build-<name>/);
# test-c runs only the C test programs (what the sanitizer builds run).

VERSION := $(shell cat VERSION)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
SONAME := libdbpool.so.$(MAJOR)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
EXTDIR ?= $(LIBDIR)
LDCONFIG ?= ldconfig
CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=
PYTHON ?= /usr/bin/python3

comma := ,
ifdef SANITIZE
B ?= build-$(firstword $(subst $(comma), ,$(SANITIZE)))
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
else
B ?= build
SAN_FLAGS :=
endif

MACHINE := $(shell $(CC) -dumpmachine)
ifneq (,$(findstring x86_64,$(MACHINE)))
ARCH_FLAGS := -mcx16
endif

# Warnings are errors by default; packagers building with a newer compiler
# than this tree was tested with turn that off with WERROR=0.
WERROR ?= 1
WARN := -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror)
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) -fPIC -fvisibility=hidden -pthread \
  -Iinclude -I. $(ARCH_FLAGS) $(SAN_FLAGS)
LIB_CFLAGS := $(BASE_CFLAGS) -DDBPOOL_BUILDING
ALL_LDFLAGS := -pthread $(SAN_FLAGS) $(LDFLAGS)

# libdbpool: the low-level base (clocks, futexes, identity, messages), the
# coordinator (no SQLite) and the in-process pool (SQLite). Internal headers
# are included by their path from the top (-I.: "base/base.h").
BASE_SRC := $(sort $(wildcard base/*.c))
COORD_SRC := $(BASE_SRC) $(sort $(wildcard coordinator/*.c))
POOL_SRC := $(sort $(wildcard pool/*.c))
LIB_OBJ := $(COORD_SRC:%.c=$(B)/lib/%.o) $(POOL_SRC:%.c=$(B)/lib/%.o)

# The extension carries its own hidden copy of the coordinator (no
# DBPOOL_BUILDING: nothing but sqlite3_dbpool_init is exported) and uses the
# host's SQLite through sqlite3ext.h: it is linked with -z defs and without
# -lsqlite3, so a stray direct SQLite call fails the build.
EXT_SRC := $(sort $(wildcard ext/*.c))
EXT_OBJ := $(EXT_SRC:%.c=$(B)/ext/%.o) $(COORD_SRC:%.c=$(B)/ext/%.o)

CLI_SRC := $(sort $(wildcard cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(B)/cli-obj/%.o)

TEST_SRC := $(sort $(wildcard tests/coord/*.c))
POOL_TEST_SRC := $(sort $(wildcard tests/pool/*.c))
TEST_BIN := $(TEST_SRC:tests/coord/%.c=$(B)/tests/%) \
  $(POOL_TEST_SRC:tests/pool/%.c=$(B)/tests/pool-%)

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

PRODUCTS := $(B)/libdbpool.a $(B)/libdbpool.so $(B)/dbpool.so $(B)/dbpoolctl $(B)/dbpool.pc \
  $(B)/libdbpool-preload.so

.PHONY: all products test test-c test-package bench demo deps deps-integrations install \
  uninstall clean version-header FORCE
all: $(PRODUCTS) $(TEST_BIN) $(BENCH_BIN)
products: $(PRODUCTS)

# The headers' version (include/dbpool_version.h, which the library reports
# too) must be VERSION's: `make version-header` writes it.
VERSION_NUMBER := $(shell echo $(VERSION) | awk -F. '{print $$1 * 1000000 + $$2 * 1000 + $$3}')
$(B)/version.ok: VERSION include/dbpool_version.h
	@grep -q '^#define DBPOOL_VERSION "$(VERSION)"$$' include/dbpool_version.h && \
	 grep -q '^#define DBPOOL_VERSION_NUMBER $(VERSION_NUMBER)$$' include/dbpool_version.h || \
	 { echo "include/dbpool_version.h does not say $(VERSION) ($(VERSION_NUMBER)), as VERSION does: run make version-header" >&2; exit 1; }
	@mkdir -p $(dir $@) && touch $@

version-header:
	sed -i -e 's/^#define DBPOOL_VERSION ".*"$$/#define DBPOOL_VERSION "$(VERSION)"/' \
	  -e 's/^#define DBPOOL_VERSION_NUMBER .*$$/#define DBPOOL_VERSION_NUMBER $(VERSION_NUMBER)/' \
	  include/dbpool_version.h

$(B)/lib/%.o: %.c $(B)/version.ok
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/ext/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iext $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# dbpoolctl run looks for the preload library under ../lib/MULTIARCH/dbpool
# too (Debian's library directory).
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
$(B)/cli-obj/cli/run.o: CLI_DEFS := -DDBPOOL_MULTIARCH='"$(MULTIARCH)"'
$(B)/cli-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CLI_DEFS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/libdbpool.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# Real name libdbpool.so.X.Y.Z, soname libdbpool.so.X: from VERSION, like
# dbpool_version() and dbpoolctl --version.
# libdbpool.map lists every exported symbol (the ABI): the version script.
$(B)/libdbpool.so: $(LIB_OBJ) libdbpool.map
	$(CC) -shared -Wl,-z,defs -Wl,-soname,$(SONAME) -Wl,--version-script=libdbpool.map \
	  -o $@.$(VERSION) $(LIB_OBJ) -lsqlite3 $(ALL_LDFLAGS)
	ln -sf libdbpool.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $@

$(B)/dbpool.so: $(EXT_OBJ) ext/dbpool.map
	$(CC) -shared -Wl,-z,defs -Wl,--version-script=ext/dbpool.map -o $@ $(EXT_OBJ) $(ALL_LDFLAGS)

# The LD_PRELOAD library of `dbpoolctl run`: links nothing but libc; it
# dlopens libsqlite3.so.0 and dbpool.so when a process starts.
$(B)/libdbpool-preload.so: preload/preload.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $(B)/preload.d -shared -Wl,-z,defs \
	  $< -o $@ -ldl $(ALL_LDFLAGS)

# dbpoolctl needs only the coordinator: no SQLite.
$(B)/dbpoolctl: $(CLI_OBJ) $(B)/libdbpool.a
	$(CC) -o $@ $(CLI_OBJ) $(B)/libdbpool.a $(ALL_LDFLAGS)

# Paths under PREFIX are written relative to ${prefix}, so that
# pkg-config --define-variable=prefix=... can relocate them.
PC_LIBDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
$(B)/dbpool.pc: dbpool.pc.in VERSION FORCE
	@mkdir -p $(dir $@)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

# Tests and benchmarks write dependency files too (-MMD -MF $@.d): a change
# to the headers they include (tests/lib/*.h, tests/pool/poolutil.h,
# bench/bench.h, internal headers) rebuilds them.
$(B)/tests/%: tests/coord/%.c $(B)/libdbpool.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/lib $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ \
	  $(B)/libdbpool.a $(ALL_LDFLAGS)

$(B)/tests/pool-%: tests/pool/%.c $(B)/libdbpool.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/lib $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ \
	  $(B)/libdbpool.a -lsqlite3 $(ALL_LDFLAGS)

# Benchmarks that are SQLite applications link the host's libsqlite3.
$(B)/bench/ext_bench $(B)/bench/pool_bench $(B)/bench/writer_bench: BENCH_LIBS := -lsqlite3
$(B)/bench/%: bench/%.c $(B)/libdbpool.a $(B)/dbpool.so
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ $(B)/libdbpool.a \
	  $(BENCH_LIBS) $(ALL_LDFLAGS) -lm

# What a fresh Debian or Ubuntu lacks: installed when root, else the one
# command to run is printed. deps-integrations: the runtimes of the recipes
# in docs/integrations.md (tests/integrations skips what is missing).
deps:
	@scripts/deps.sh

deps-integrations:
	@scripts/deps.sh integrations

# The Debian package (debian/): built with dpkg-buildpackage in a copy of the
# tree, checked (contents, lintian) and used unpacked. Not part of `make
# test` (it needs debhelper and lintian); .ci/run runs it.
test-package:
	@scripts/deps.sh package
	tests/package.sh

# deps first, before anything compiles against sqlite3.h.
test: deps
	@$(MAKE) --no-print-directory all
	B=$(B) PYTHON=$(PYTHON) tests/run.sh

test-c: all
	B=$(B) TEST_ONLY_C=1 tests/run.sh

bench: all
	B=$(B) bench/run.sh

demo: deps
	@$(MAKE) --no-print-directory $(B)/dbpool.so $(B)/dbpoolctl
	B=$(B) demo/demo.sh

# Installed files; uninstall removes exactly these.
PUBLIC_HEADERS := dbpool.h dbpool_coord.h dbpool_admin.h dbpool_version.h
# The preload library of `dbpoolctl run` lives in LIBDIR/dbpool (not a
# library to link with), beside a link to the extension, which it loads.
PRELOADDIR := $(LIBDIR)/dbpool
EXT_LINK := $(if $(filter $(abspath $(EXTDIR)),$(abspath $(LIBDIR))),../dbpool.so,$(EXTDIR)/dbpool.so)
INSTALLED := $(BINDIR)/dbpoolctl $(EXTDIR)/dbpool.so $(LIBDIR)/libdbpool.a \
  $(PRELOADDIR)/libdbpool-preload.so $(PRELOADDIR)/dbpool.so \
  $(LIBDIR)/libdbpool.so.$(VERSION) $(LIBDIR)/$(SONAME) $(LIBDIR)/libdbpool.so \
  $(addprefix $(INCLUDEDIR)/,$(PUBLIC_HEADERS)) $(LIBDIR)/pkgconfig/dbpool.pc \
  $(MANDIR)/man1/dbpoolctl.1 $(MANDIR)/man3/dbpool.3 $(MANDIR)/man7/dbpool.7

install: $(PRODUCTS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(PRELOADDIR) $(DESTDIR)$(EXTDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(B)/dbpoolctl $(DESTDIR)$(BINDIR)/dbpoolctl
	install -m 644 $(B)/dbpool.so $(DESTDIR)$(EXTDIR)/dbpool.so
	install -m 644 $(B)/libdbpool-preload.so $(DESTDIR)$(PRELOADDIR)/libdbpool-preload.so
	ln -sf $(EXT_LINK) $(DESTDIR)$(PRELOADDIR)/dbpool.so
	install -m 644 $(B)/libdbpool.a $(DESTDIR)$(LIBDIR)/libdbpool.a
	install -m 644 $(B)/libdbpool.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdbpool.so.$(VERSION)
	ln -sf libdbpool.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libdbpool.so
	install -m 644 $(addprefix include/,$(PUBLIC_HEADERS)) $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(B)/dbpool.pc $(DESTDIR)$(LIBDIR)/pkgconfig/dbpool.pc
	install -m 644 docs/man/dbpoolctl.1 $(DESTDIR)$(MANDIR)/man1/dbpoolctl.1
	install -m 644 docs/man/dbpool.3 $(DESTDIR)$(MANDIR)/man3/dbpool.3
	install -m 644 docs/man/dbpool.7 $(DESTDIR)$(MANDIR)/man7/dbpool.7
	@scripts/post-install.sh "$(DESTDIR)" "$(LIBDIR)" "$(EXTDIR)" "$(LDCONFIG)"

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(PRELOADDIR) 2>/dev/null || true

clean:
	rm -rf build build-*

-include $(shell find $(B) -name '*.d' 2>/dev/null)
