/*
** testutil.h -- a tiny test harness for dbpool's C tests.
**
** Every test program runs in its own pool namespace (DBPOOL_NAMESPACE), makes
** its database files in a private temporary directory, and at exit removes
** every pool segment of its namespace and fails if one is left over.
**
**   TEST(name) { CHECK(x == 1); CHECK_RC(dbpool_..., 0); }
**   int main(void) { tu_init("unit"); RUN(name); return tu_finish(); }
**
** Fixtures: tu_db(name) a database file; tu_pool_open(name, max, holders,
** held) a pool with holders; CCHECK/CHILD_EXIT checks in forked children.
*/
#ifndef DBPOOL_TESTUTIL_H
#define DBPOOL_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The tests are dbpool's own: they may use the private interface too. */
#include "coordinator/private.h"

static int tu_failures, tu_checks;
static char tu_dir[256];
static char tu_ns[64];
static const char *tu_current = "";

#define TEST(name) static void name(void)
#define RUN(name)                                                    \
  do {                                                               \
    int before_ = tu_failures;                                       \
    tu_current = #name;                                              \
    name();                                                          \
    printf("%s %s\n", tu_failures == before_ ? "ok  " : "FAIL", #name); \
    fflush(stdout);                                                  \
  } while (0)

#define CHECK(cond)                                                       \
  do {                                                                    \
    tu_checks++;                                                          \
    if (!(cond)) {                                                        \
      tu_failures++;                                                      \
      fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__,         \
              __LINE__, tu_current, #cond);                               \
    }                                                                     \
  } while (0)

#define CHECK_RC(expr, want)                                              \
  do {                                                                    \
    long got_ = (long)(expr);                                             \
    tu_checks++;                                                          \
    if (got_ != (long)(want)) {                                           \
      tu_failures++;                                                      \
      fprintf(stderr, "%s:%d: [%s] %s = %ld (%s), want %ld; last error: %s\n", \
              __FILE__, __LINE__, tu_current, #expr, got_,                \
              dbpool_strerror((int)got_), (long)(want), dbpool_last_error()); \
    }                                                                     \
  } while (0)

#define CHECK_STR(got, want)                                              \
  do {                                                                    \
    const char *g_ = (got), *w_ = (want);                                 \
    tu_checks++;                                                          \
    if (strcmp(g_, w_) != 0) {                                            \
      tu_failures++;                                                      \
      fprintf(stderr, "%s:%d: [%s] %s = \"%s\", want \"%s\"\n", __FILE__, \
              __LINE__, tu_current, #got, g_, w_);                        \
    }                                                                     \
  } while (0)

/* Checks inside a forked child: counted, reported on stderr with the
** child's pid and this thread's dbpool message, and made the child's exit
** status by CHILD_EXIT() (which the parent checks with tu_wait_child). */
static int c_fail __attribute__((unused));
#define CCHECK(cond)                                                      \
  do {                                                                    \
    if (!(cond)) {                                                        \
      c_fail++;                                                           \
      fprintf(stderr, "%s:%d: [%s, child %d] check failed: %s (%s)\n",    \
              __FILE__, __LINE__, tu_current, (int)getpid(), #cond,       \
              dbpool_last_error());                                       \
    }                                                                     \
  } while (0)
#define CHILD_EXIT() _exit(c_fail ? 1 : 0)

/* A fatal condition: stop the program (test code only). */
#define REQUIRE(cond)                                                     \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: [%s] required: %s (%s)\n", __FILE__,        \
              __LINE__, tu_current, #cond, dbpool_last_error());          \
      tu_cleanup();                                                       \
      _exit(2);                                                           \
    }                                                                     \
  } while (0)

/* How much slower than a plain run this one is: 1 normally; under
** valgrind (memcheck runs everything 20 to 50 times slower, one thread at
** a time) DBPOOL_TEST_SLOWDOWN, which tests/valgrind.sh exports, or 30
** when the program finds itself under valgrind without it
** (RUNNING_ON_VALGRIND, where <valgrind/valgrind.h> exists). The variable
** applies to any run (DBPOOL_TEST_SLOWDOWN=5 for a very loaded machine).
**
** Every bound a test puts on how long something may take -- a child must
** report within N ms, a wait that must succeed has a timeout of N ms, a
** loop polls at most N times, a child's alarm() -- is a liveness bound
** (how fast it is, is the benchmarks' business), and is written tu_ms(N)
** (tu_sec, tu_polls): the allowance grows, what is checked does not
** change. tu_wait_child scales its own. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TU_HAVE_VALGRIND_H 1
#endif
#endif

static inline int tu_slowdown(void)
{
  static int cached; /* 0: not yet known */
  int f = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (f) return f;
  const char *e = getenv("DBPOOL_TEST_SLOWDOWN");
  f = e && *e ? atoi(e) : 0;
#ifdef TU_HAVE_VALGRIND_H
  if (f < 1 && RUNNING_ON_VALGRIND) f = 30;
#endif
  if (f < 1) f = 1;
  if (f > 1000) f = 1000;
  __atomic_store_n(&cached, f, __ATOMIC_RELAXED);
  return f;
}

/* A duration (ms), a number of seconds (alarm) or of polls, allowed for
** something that must happen: scaled by tu_slowdown(). */
static inline double tu_ms(double ms) { return ms * tu_slowdown(); }
static inline unsigned tu_sec(unsigned s) { return s * (unsigned)tu_slowdown(); }
static inline long tu_polls(long n) { return n * tu_slowdown(); }

static inline double tu_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline void tu_sleep_ms(double ms)
{
  struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Busy-wait (a hold that must not sleep). */
static inline void tu_spin_us(double us)
{
  double end = tu_now_ms() + us / 1000.0;
  while (tu_now_ms() < end) {
  }
}

/* Segments of our namespace left in /dev/shm. */
static inline int tu_count_segments(void)
{
  char prefix[96];
  snprintf(prefix, sizeof prefix, "dbpool.%s.", tu_ns);
  DIR *d = opendir("/dev/shm");
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
  if (d) closedir(d);
  return n;
}

static inline int tu_remove_cb(const char *name, void *arg)
{
  (void)arg;
  dbpool_coord_remove(NULL, name, 1);
  return 0;
}

static inline void tu_cleanup(void)
{
  dbpool_coord_list(tu_remove_cb, NULL);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_dir);
  if (tu_dir[0] && system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", tu_dir);
}

/* The name db's pool has (candidate 0), without creating it: naming.c's
** /dbpool.[ns.]<dev>.<ino>.<birth>, birth from statx (0 when the file
** system keeps none). */
static inline void tu_pool_name(const char *db, char *name, size_t cap)
{
  struct statx sx;
  if (statx(AT_FDCWD, db, 0, STATX_BASIC_STATS | STATX_BTIME, &sx) != 0) {
    snprintf(name, cap, "/dbpool.unstatable");
    return;
  }
  unsigned long long birth =
      (sx.stx_mask & STATX_BTIME)
          ? (unsigned long long)sx.stx_btime.tv_sec * 1000000000ull + sx.stx_btime.tv_nsec
          : 0;
  const char *ns = "";
  dbpool_coord_namespace(&ns);
  snprintf(name, cap, "/dbpool.%s%s%llx.%llx.%llx", ns, *ns ? "." : "",
           (unsigned long long)makedev(sx.stx_dev_major, sx.stx_dev_minor),
           (unsigned long long)sx.stx_ino, birth);
}

/* A fresh database file (empty is fine: the coordinator never reads it). */
static inline const char *tu_db(const char *name)
{
  static char paths[64][512];
  static int n;
  char *p = paths[n++ % 64];
  snprintf(p, 512, "%s/%s", tu_dir, name);
  int fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
  return p;
}

static inline void tu_init(const char *suite)
{
  /* DBPOOL_TEST_RUN (set by tests/run.sh) prefixes every namespace of one
  ** run, so that the run can count what it left behind while other dbpool
  ** users (or other runs) are active on the host. */
  const char *run = getenv("DBPOOL_TEST_RUN");
  snprintf(tu_ns, sizeof tu_ns, "%st%d-%s", run ? run : "", (int)getpid(), suite);
  setenv("DBPOOL_NAMESPACE", tu_ns, 1);
  unsetenv("DBPOOL_MAX_CONNECTIONS");
  unsetenv("DBPOOL_ACQUIRE_TIMEOUT_MS");
  snprintf(tu_dir, sizeof tu_dir, "/tmp/dbpool-test-%s-XXXXXX", suite);
  if (!mkdtemp(tu_dir)) {
    perror("mkdtemp");
    exit(2);
  }
  chmod(tu_dir, 0755);
  setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int tu_finish(void)
{
  tu_cleanup();
  int left = tu_count_segments();
  if (left) {
    fprintf(stderr, "%d pool segment(s) of namespace %s left in /dev/shm\n", left, tu_ns);
    tu_failures++;
  }
  printf("%s: %d checks, %d failures\n", tu_failures ? "FAILED" : "passed",
         tu_checks, tu_failures);
  return tu_failures ? 1 : 0;
}

/* The setup most coordinator tests start with: a pool (database file
** name, in the test's directory) of max_connections slots, with `holders`
** holders of this process, the first `held` of them holding a slot. */
#define TU_POOL_HOLDERS 8
typedef struct tu_pool {
  const char *db;
  dbpool_coord *c;
  dbpool_holder *h[TU_POOL_HOLDERS];
  int n;
} tu_pool;

static inline tu_pool tu_pool_open(const char *name, int max_connections, int holders,
                                   int held)
{
  tu_pool p = {.db = tu_db(name), .n = holders};
  REQUIRE(holders <= TU_POOL_HOLDERS && held <= holders);
  REQUIRE(dbpool_coord_open(p.db, 0, &p.c) == 0);
  REQUIRE(dbpool_coord_set(p.c, DBPOOL_SETTING_MAX_CONNECTIONS, max_connections) == 0);
  for (int i = 0; i < holders; i++) {
    REQUIRE(dbpool_holder_new(p.c, &p.h[i]) == 0);
    if (i < held) REQUIRE(dbpool_holder_acquire(p.h[i], 0) == 0);
  }
  return p;
}

/* In a forked child: attach to db and take a slot with a new holder
** (labelled, unless label is NULL); on failure, say why and _exit(3). */
static inline dbpool_holder *tu_child_take_slot(const char *db, const char *label)
{
  dbpool_coord *c;
  dbpool_holder *h;
  if (dbpool_coord_open(db, 0, &c) || dbpool_holder_new(c, &h) ||
      dbpool_holder_acquire(h, 0) || (label && dbpool_holder_set_label(h, label))) {
    fprintf(stderr, "[%s, child %d] taking a slot of %s: %s\n", tu_current,
            (int)getpid(), db, dbpool_last_error());
    _exit(3);
  }
  return h;
}

/* Free its holders (giving back their slots) and close it. */
static inline void tu_pool_close(tu_pool *p)
{
  for (int i = 0; i < p->n; i++) dbpool_holder_free(p->h[i]);
  dbpool_coord_close(p->c);
  memset(p, 0, sizeof *p);
}

/* Shared memory for children to report into (anonymous, inherited). */
static inline void *tu_shared(size_t size)
{
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  return p;
}

/* Wait for a child; returns its exit status, or 128+signal. Kills it after
** tu_ms(timeout_ms) (a hung child is a failure, not a hung suite). */
static inline int tu_wait_child(pid_t pid, double timeout_ms)
{
  double end = tu_now_ms() + tu_ms(timeout_ms);
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (tu_now_ms() > end) {
      fprintf(stderr, "[%s] child %d hung; killing it\n", tu_current, (int)pid);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -2;
    }
    tu_sleep_ms(1);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

/* A 128-bit word of flags shared by processes, changed with 16-byte CAS:
** fetch-or and fetch-and return the word as it was, an atomic snapshot
** (counting separate flags one by one is not one). */
__extension__ typedef unsigned __int128 tu_u128;

static inline tu_u128 tu_u128_fetch_or(tu_u128 *w, tu_u128 bits)
{
  tu_u128 old = 0; /* a guess; the CAS returns the real value */
  for (;;) {
    tu_u128 seen = __sync_val_compare_and_swap(w, old, old | bits);
    if (seen == old) return old;
    old = seen;
  }
}

static inline tu_u128 tu_u128_fetch_and(tu_u128 *w, tu_u128 bits)
{
  tu_u128 old = 0;
  for (;;) {
    tu_u128 seen = __sync_val_compare_and_swap(w, old, old & bits);
    if (seen == old) return old;
    old = seen;
  }
}

/* xorshift64*: reproducible per-process randomness from a seed. */
static inline uint64_t tu_rnd(uint64_t *s)
{
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C(2685821657736338717);
}

#endif
