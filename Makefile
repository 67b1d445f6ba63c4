# dbpool -- a host-wide connection cap for SQLite.
#
#   make            build everything into build/
#   make test       build and run the test suite (what CI runs)
#   make bench      print benchmark figures (ratios measured in one run)
#   make clean
#
# Respects CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR. SANITIZE=address,undefined or
# SANITIZE=thread builds everything with that sanitizer (into build-<name>/).

VERSION := $(shell cat VERSION)
PREFIX ?= /usr/local
CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=
PYTHON ?= /usr/bin/python3

ifdef SANITIZE
B ?= build-$(firstword $(subst $(comma), ,$(SANITIZE)))
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
else
B ?= build
SAN_FLAGS :=
endif
comma := ,

MACHINE := $(shell $(CC) -dumpmachine)
ifneq (,$(findstring x86_64,$(MACHINE)))
ARCH_FLAGS := -mcx16
endif

WARN := -Wall -Wextra -Werror
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) -fPIC -fvisibility=hidden -pthread \
  -Iinclude $(ARCH_FLAGS) $(SAN_FLAGS) -DDBPOOL_VERSION='"$(VERSION)"'
LIB_CFLAGS := $(BASE_CFLAGS) -DDBPOOL_BUILDING
ALL_LDFLAGS := -pthread $(SAN_FLAGS) $(LDFLAGS)

COORD_SRC := $(sort $(wildcard coordinator/*.c))
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
TEST_UTIL := tests/lib/testutil.h

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

.PHONY: all test test-c bench clean
all: $(B)/libdbpool.a $(B)/dbpool.so $(B)/dbpoolctl $(TEST_BIN) $(BENCH_BIN)

$(B)/lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/ext/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iext $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/dbpool.so: $(EXT_OBJ)
	$(CC) -shared -Wl,-z,defs -o $@ $^ $(ALL_LDFLAGS)

$(B)/cli-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# dbpoolctl needs only the coordinator: no SQLite.
$(B)/dbpoolctl: $(CLI_OBJ) $(B)/libdbpool.a
	$(CC) -o $@ $(CLI_OBJ) $(B)/libdbpool.a $(ALL_LDFLAGS)

$(B)/libdbpool.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/tests/%: tests/coord/%.c $(B)/libdbpool.a $(TEST_UTIL)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/lib $(CFLAGS) $< -o $@ $(B)/libdbpool.a $(ALL_LDFLAGS)

# Benchmarks that are SQLite applications link the host's libsqlite3.
$(B)/tests/pool-%: tests/pool/%.c $(B)/libdbpool.a $(TEST_UTIL)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/lib $(CFLAGS) $< -o $@ $(B)/libdbpool.a -lsqlite3 $(ALL_LDFLAGS)

$(B)/bench/ext_bench $(B)/bench/pool_bench: BENCH_LIBS := -lsqlite3
$(B)/bench/%: bench/%.c $(B)/libdbpool.a $(B)/dbpool.so
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $< -o $@ $(B)/libdbpool.a $(BENCH_LIBS) $(ALL_LDFLAGS) -lm

test: all
	B=$(B) PYTHON=$(PYTHON) tests/run.sh

# The C test programs only (what the sanitizer builds run).
test-c: all
	B=$(B) TEST_ONLY_C=1 tests/run.sh

bench: all
	B=$(B) bench/run.sh

clean:
	rm -rf build build-*

-include $(shell find $(B) -name '*.d' 2>/dev/null)
