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
#   make coverage   the suite on an instrumented build; coverage per directory
#   make FAULT=1 test-faults   fault injection alone (make test runs it, quick)
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (clang; corpus kept)
#   make fuzz-ci    each libFuzzer target FUZZ_CI_SECONDS (25) from the corpus
#   make valgrind   the C test programs under memcheck (slow)
#   make clean
#
# Respects CC, CPPFLAGS, CFLAGS, LDFLAGS, PREFIX, DESTDIR, WERROR (1: warnings
# are errors, the default; 0 for packagers on newer compilers), and BINDIR,
# LIBDIR, INCLUDEDIR, MANDIR, EXTDIR (where the SQLite extension dbpool.so
# goes: LIBDIR unless given; a system library directory such as
# /usr/lib/x86_64-linux-gnu makes `.load dbpool` work by bare name), LDCONFIG. SANITIZE=address,undefined or
# SANITIZE=thread builds everything with that sanitizer (into build-<name>/);
# test-c runs only the C test programs (what the sanitizer builds run).
# COVERAGE=1 builds everything instrumented (gcc --coverage, -O0) into
# build-coverage/: `make coverage` runs the whole suite with it and checks the
# floors (docs/testing.md).

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
# FAULT=1: the fault build (tests/fault/inject.h), into build-fault/ (under
# ASan and UBSan, whose leak check is part of what it checks): every object
# of libdbpool, dbpool.so and dbpoolctl has its allocations and system calls
# renamed to the fault layer's (tests/fault/wrap.syms), which the products
# link as $(B)/libdbpool-fault.so. make test-faults runs the driver.
ifdef FAULT
SANITIZE ?= address,undefined
ifdef COVERAGE
B ?= build-coverage-fault
endif
B ?= build-fault
FAULT_LIB = $(B)/libdbpool-fault.so
FAULT_LINK = $(FAULT_LIB) -Wl,-rpath,'$$ORIGIN:$$ORIGIN/..'
FAULT_WRAP = objcopy --redefine-syms=tests/fault/wrap.syms $@
FAULT_DEFS = -DDBPOOL_FAULT_BUILD
FAULT_DEPS = tests/fault/wrap.syms
endif
# An instrumented build counts at -O0 (lines and branches as written), in
# atomic counters (threads); a test child that leaves with _exit() dumps its
# counters first (tests/lib/cov_exit.c, linked into every test program).
ifdef COVERAGE
B ?= build-coverage
override CFLAGS := -O0 -g
COV_FLAGS := --coverage -fprofile-update=atomic -DDBPOOL_COVERAGE
TEST_COV_OBJ = $(B)/tests/lib/cov_exit.o
TEST_COV_LINK = $(TEST_COV_OBJ) -Wl,--wrap=_exit \
  -Wl,--export-dynamic-symbol=dbpool_test_cov_register
endif
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
  -Iinclude -I. $(ARCH_FLAGS) $(SAN_FLAGS) $(COV_FLAGS)
LIB_CFLAGS := $(BASE_CFLAGS) -DDBPOOL_BUILDING
ALL_LDFLAGS := -pthread $(SAN_FLAGS) $(COV_FLAGS) $(LDFLAGS)

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
# The owner-died recovery test links its own copy of the coordinator, built
# with crash points (coordinator/internal.h, DBP_CRASH_POINT).
CRASH_TEST_SRC := $(sort $(wildcard tests/crash/*.c))
HOOK_OBJ := $(COORD_SRC:%.c=$(B)/hooks/%.o)
TEST_BIN := $(TEST_SRC:tests/coord/%.c=$(B)/tests/%) \
  $(POOL_TEST_SRC:tests/pool/%.c=$(B)/tests/pool-%) \
  $(CRASH_TEST_SRC:tests/crash/%.c=$(B)/tests/crash-%)

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

PRODUCTS := $(B)/libdbpool.a $(B)/libdbpool.so $(B)/dbpool.so $(B)/dbpoolctl $(B)/dbpool.pc \
  $(B)/libdbpool-preload.so

.PHONY: all products test test-c test-package bench demo deps deps-integrations install \
  uninstall clean version-header coverage test-faults fuzz fuzz-ci fuzz-build valgrind FORCE
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

$(B)/lib/%.o: %.c $(B)/version.ok $(FAULT_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@
	$(FAULT_WRAP)

$(B)/ext/%.o: %.c $(FAULT_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iext $(FAULT_DEFS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@
	$(FAULT_WRAP)

# dbpoolctl run looks for the preload library under ../lib/MULTIARCH/dbpool
# too (Debian's library directory).
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
$(B)/cli-obj/cli/run.o: CLI_DEFS := -DDBPOOL_MULTIARCH='"$(MULTIARCH)"'
$(B)/cli-obj/%.o: %.c $(FAULT_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CLI_DEFS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@
	$(FAULT_WRAP)

$(B)/libdbpool.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# Real name libdbpool.so.X.Y.Z, soname libdbpool.so.X: from VERSION, like
# dbpool_version() and dbpoolctl --version.
# libdbpool.map lists every exported symbol (the ABI): the version script.
$(B)/libdbpool.so: $(LIB_OBJ) libdbpool.map $(FAULT_LIB)
	$(CC) -shared -Wl,-z,defs -Wl,-soname,$(SONAME) -Wl,--version-script=libdbpool.map \
	  -o $@.$(VERSION) $(LIB_OBJ) -lsqlite3 $(FAULT_LINK) $(ALL_LDFLAGS)
	ln -sf libdbpool.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $@

$(B)/dbpool.so: $(EXT_OBJ) ext/dbpool.map $(FAULT_LIB)
	$(CC) -shared -Wl,-z,defs -Wl,--version-script=ext/dbpool.map -o $@ $(EXT_OBJ) \
	  $(FAULT_LINK) $(ALL_LDFLAGS)

# The LD_PRELOAD library of `dbpoolctl run`: links nothing but libc; it
# dlopens libsqlite3.so.0 and dbpool.so when a process starts.
$(B)/libdbpool-preload.so: preload/preload.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $(B)/preload.d -shared -Wl,-z,defs \
	  $< -o $@ -ldl $(ALL_LDFLAGS)

# dbpoolctl needs only the coordinator: no SQLite.
$(B)/dbpoolctl: $(CLI_OBJ) $(B)/libdbpool.a $(FAULT_LIB)
	$(CC) -o $@ $(CLI_OBJ) $(B)/libdbpool.a $(FAULT_LINK) $(ALL_LDFLAGS)

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
$(B)/tests/%: tests/coord/%.c $(B)/libdbpool.a $(TEST_COV_OBJ) $(FAULT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/lib $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ \
	  $(B)/libdbpool.a $(TEST_COV_LINK) $(FAULT_LINK) $(ALL_LDFLAGS)

$(B)/tests/pool-%: tests/pool/%.c $(B)/libdbpool.a $(TEST_COV_OBJ) $(FAULT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/lib $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ \
	  $(B)/libdbpool.a -lsqlite3 $(TEST_COV_LINK) $(FAULT_LINK) $(ALL_LDFLAGS)

# The fault layer, and the driver that fails each operation's calls in turn.
$(B)/libdbpool-fault.so: tests/fault/inject.c tests/fault/inject.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -shared -Wl,-soname,libdbpool-fault.so $< -o $@ \
	  $(ALL_LDFLAGS)

$(B)/tests/faults: tests/fault/driver.c tests/fault/inject.h $(B)/libdbpool.a $(B)/dbpool.so \
    $(B)/dbpoolctl $(FAULT_LIB) $(TEST_COV_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/fault $(CFLAGS) $< -o $@ $(B)/libdbpool.a -lsqlite3 \
	  $(TEST_COV_LINK) $(FAULT_LINK) $(ALL_LDFLAGS)

$(B)/hooks/%.o: %.c $(B)/version.ok $(FAULT_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DDBPOOL_CRASH_POINTS $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@
	$(FAULT_WRAP)

# Kept (not intermediate files make would delete after linking).
.SECONDARY: $(HOOK_OBJ)
$(B)/tests/crash-%: tests/crash/%.c $(HOOK_OBJ) $(TEST_COV_OBJ) $(FAULT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/lib $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ \
	  $(HOOK_OBJ) $(TEST_COV_LINK) $(FAULT_LINK) $(ALL_LDFLAGS)

# Not under $(B)/tests/ itself: tests/run.sh runs every program there.
$(B)/tests/lib/%.o: tests/lib/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -c $< -o $@

# Benchmarks that are SQLite applications link the host's libsqlite3.
$(B)/bench/ext_bench $(B)/bench/pool_bench $(B)/bench/writer_bench: BENCH_LIBS := -lsqlite3
$(B)/bench/%: bench/%.c $(B)/libdbpool.a $(B)/dbpool.so
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ $(B)/libdbpool.a \
	  $(BENCH_LIBS) $(ALL_LDFLAGS) -lm

# make FAULT=1 test-faults (make test runs it): the fault driver, quick mode
# unless FAULT_FULL=1.
test-faults:
	@test -n "$(FAULT)" || { echo "test-faults: run as make FAULT=1 test-faults"; exit 2; }
	@$(MAKE) --no-print-directory $(B)/tests/faults
	$(B)/tests/faults

# libFuzzer targets (tests/fuzz/*.c), built with clang into build-fuzz/
# under ASan and UBSan: the coordinator and the extension instrumented for
# coverage (-fsanitize=fuzzer-no-link), each target linked with
# -fsanitize=fuzzer. make fuzz runs each for FUZZ_SECONDS (default 60),
# adding what it finds to the kept corpus (tests/fuzz/corpus/TARGET);
# make fuzz-ci runs each for FUZZ_CI_SECONDS (25) from the kept corpus,
# which it leaves unchanged. A crash is saved under build-fuzz/artifacts/.
FUZZ_CC ?= clang
FUZZ_B := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 25
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) -fPIC -fvisibility=hidden -pthread -Iinclude \
  -I. $(ARCH_FLAGS) -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_SRC := $(sort $(wildcard tests/fuzz/*.c))
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz-%)

$(FUZZ_B)/lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DDBPOOL_BUILDING -MMD -MP -c $< -o $@

$(FUZZ_B)/ext/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iext -MMD -MP -c $< -o $@

$(FUZZ_B)/dbpool.so: $(EXT_SRC:%.c=$(FUZZ_B)/ext/%.o) $(COORD_SRC:%.c=$(FUZZ_B)/ext/%.o)
	$(FUZZ_CC) -shared -o $@ $^ -pthread $(FUZZ_SAN) -fsanitize=fuzzer-no-link

# The segment target links the coordinator; the SQL target links SQLite and
# loads the instrumented extension ($(FUZZ_B)/dbpool.so) at start.
$(FUZZ_B)/fuzz-segment: $(COORD_SRC:%.c=$(FUZZ_B)/lib/%.o)
$(FUZZ_B)/fuzz-sql: $(FUZZ_B)/dbpool.so
$(FUZZ_B)/fuzz-sql: FUZZ_LIBS := -lsqlite3
$(FUZZ_B)/fuzz-%: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(filter %.o,$^) $(FUZZ_LIBS) -pthread

fuzz-build:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

FUZZ_RUN = mkdir -p $(FUZZ_B)/artifacts tests/fuzz/corpus/$(1) && \
  $(FUZZ_B)/fuzz-$(1) -max_total_time=$(2) -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix=$(FUZZ_B)/artifacts/$(1)- $(3) tests/fuzz/corpus/$(1)

fuzz: fuzz-build
	@set -e; $(foreach t,$(FUZZ_TARGETS),echo "== fuzz-$(t) for $(FUZZ_SECONDS) s"; \
	  $(call FUZZ_RUN,$(t),$(FUZZ_SECONDS),);)

# New inputs go to a scratch directory (the first one named), so the kept
# corpus is only read.
fuzz-ci: fuzz-build
	@set -e; $(foreach t,$(FUZZ_TARGETS),echo "== fuzz-$(t) for $(FUZZ_CI_SECONDS) s"; \
	  rm -rf $(FUZZ_B)/scratch-$(t); mkdir -p $(FUZZ_B)/scratch-$(t); \
	  $(call FUZZ_RUN,$(t),$(FUZZ_CI_SECONDS),$(FUZZ_B)/scratch-$(t));)

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

# The C test programs under valgrind's memcheck (tests/valgrind.sh): any
# memcheck error fails; slow (20-50x).
valgrind: all
	B=$(B) tests/valgrind.sh

# The whole suite on the instrumented build (counters of earlier runs
# zeroed first), then the fault driver on an instrumented fault build
# (build-coverage-fault/, without sanitizers: their checks would count as
# branches of ours), then coverage per directory over both: fails below
# the floors (scripts/coverage.py) or if a test failed.
COV_B := build-coverage
COV_FB := build-coverage-fault
coverage: deps
	@scripts/deps.sh coverage
	@$(MAKE) --no-print-directory COVERAGE=1 B=$(COV_B) all
	@$(MAKE) --no-print-directory FAULT=1 COVERAGE=1 SANITIZE= B=$(COV_FB) \
	  $(COV_FB)/tests/faults
	@$(PYTHON) scripts/coverage.py --reset $(COV_B) $(COV_FB)
	@status=0; B=$(COV_B) PYTHON=$(PYTHON) tests/run.sh || status=1; \
	  $(COV_FB)/tests/faults || status=1; \
	  $(PYTHON) scripts/coverage.py $(COVERAGE_FLAGS) $(COV_B) $(COV_FB) || status=1; \
	  exit $$status

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
-include $(shell find $(FUZZ_B) -name '*.d' 2>/dev/null)
