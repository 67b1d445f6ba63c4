/*
** poolutil.h -- helpers shared by the in-process pool's tests (tests/pool/).
**
**   CHECK_SQ(expr, want)   like CHECK_RC for SQLite result codes: on failure
**                          prints sqlite3_errstr and dbpool_errmsg(NULL)
**   CHECK_CODE(v, want)    the same for a code from another thread/process
**   CHECK_HAS(str, sub)    substring check; CHECK_CMP(a, op, b) shows both
**   pu_config(max_size)    the default configuration with max_size
**   pu_open(path, cfg)     dbpool_open that must succeed
**   pu_stats(pool)         a dbpool_get_stats snapshot
**   pu_host(path)          the host pool's statistics, read through a
**                          separate dbpool_coord_open handle (independent of
**                          the pool under test)
**   pu_wait(cond, ms)      poll an expression until true or ms elapse
**                          (tu_ms(ms): longer under valgrind, tu_slowdown)
**   pu_exec(db, sql)       sqlite3_exec that reports errors
**   pu_ext_path(buf, cap)  the extension's absolute path (build dir $B)
**   pu_count_vfs_*         a VFS shim that counts open main-database files in
**                          (optionally shared) memory: an independent view of
**                          how many SQLite connections are open, whatever
**                          the pool believes
*/
#ifndef DBPOOL_POOLUTIL_H
#define DBPOOL_POOLUTIL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "dbpool.h"
#include "testutil.h"

#define CHECK_SQ(expr, want)                                              \
  do {                                                                    \
    int got_ = (int)(expr);                                               \
    tu_checks++;                                                          \
    if (got_ != (int)(want)) {                                            \
      tu_failures++;                                                      \
      fprintf(stderr, "%s:%d: [%s] %s = %d (%s), want %d (%s); errmsg: %s\n", \
              __FILE__, __LINE__, tu_current, #expr, got_, sqlite3_errstr(got_), \
              (int)(want), sqlite3_errstr(want), dbpool_errmsg(NULL));    \
    }                                                                     \
  } while (0)

/* The same for a code obtained in another thread or process (whose message
** this thread does not have). */
#define CHECK_CODE(expr, want)                                            \
  do {                                                                    \
    int got_ = (int)(expr);                                               \
    tu_checks++;                                                          \
    if (got_ != (int)(want)) {                                            \
      tu_failures++;                                                      \
      fprintf(stderr, "%s:%d: [%s] %s = %d (%s), want %d (%s)\n", __FILE__, \
              __LINE__, tu_current, #expr, got_, sqlite3_errstr(got_),    \
              (int)(want), sqlite3_errstr(want));                         \
    }                                                                     \
  } while (0)

/* A substring check that shows the string on failure. */
#define CHECK_HAS(str, sub)                                               \
  do {                                                                    \
    const char *s_ = (str), *u_ = (sub);                                  \
    tu_checks++;                                                          \
    if (!s_ || !strstr(s_, u_)) {                                         \
      tu_failures++;                                                      \
      fprintf(stderr, "%s:%d: [%s] \"%s\" does not contain \"%s\"\n",     \
              __FILE__, __LINE__, tu_current, s_ ? s_ : "(null)", u_);    \
    }                                                                     \
  } while (0)

/* A check that prints two numbers on failure. */
#define CHECK_CMP(a, op, b)                                               \
  do {                                                                    \
    long long a_ = (long long)(a), b_ = (long long)(b);                   \
    tu_checks++;                                                          \
    if (!(a_ op b_)) {                                                    \
      tu_failures++;                                                      \
      fprintf(stderr, "%s:%d: [%s] check failed: %s %s %s (%lld vs %lld)\n", \
              __FILE__, __LINE__, tu_current, #a, #op, #b, a_, b_);       \
    }                                                                     \
  } while (0)

static inline int pu_gettid(void) { return (int)syscall(SYS_gettid); }

/* The defaults with max_size connections: most tests' configuration. */
static inline dbpool_config pu_config(int max_size)
{
  dbpool_config cfg;
  dbpool_config_init(&cfg);
  cfg.max_size = max_size;
  return cfg;
}

static inline dbpool *pu_open(const char *path, const dbpool_config *cfg)
{
  dbpool *p = NULL;
  int rc = dbpool_open(path, cfg, &p);
  if (rc != SQLITE_OK || !p) {
    fprintf(stderr, "[%s] dbpool_open(%s) = %d: %s\n", tu_current, path, rc,
            dbpool_errmsg(NULL));
    tu_cleanup();
    _exit(2);
  }
  return p;
}

static inline dbpool_stats pu_stats(dbpool *p)
{
  dbpool_stats st;
  DBPOOL_INIT(&st);
  if (dbpool_get_stats(p, &st) != SQLITE_OK) {
    fprintf(stderr, "[%s] dbpool_get_stats failed: %s\n", tu_current, dbpool_errmsg(p));
    tu_failures++;
  }
  return st;
}

/* Host statistics through our own attachment (not the pool's). */
static inline dbpool_host_stats pu_host(const char *path)
{
  dbpool_host_stats hs;
  DBPOOL_INIT(&hs);
  hs.active = 9999;
  dbpool_coord *c = NULL;
  if (dbpool_coord_open(path, 0, &c) != 0) {
    fprintf(stderr, "[%s] dbpool_coord_open(%s): %s\n", tu_current, path, dbpool_last_error());
    tu_failures++;
    return hs;
  }
  if (dbpool_coord_stats(c, &hs) != 0) {
    fprintf(stderr, "[%s] dbpool_coord_stats: %s\n", tu_current, dbpool_last_error());
    tu_failures++;
  }
  dbpool_coord_close(c);
  return hs;
}

static inline void pu_set_host_cap(const char *path, int cap)
{
  dbpool_coord *c = NULL;
  REQUIRE(dbpool_coord_open(path, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, cap) == 0);
  dbpool_coord_close(c);
}

/* Poll until cond holds (1) or ms elapse (0). */
#define pu_wait(cond, ms)                                                 \
  ({                                                                      \
    double end_ = tu_now_ms() + tu_ms(ms);                                \
    int ok_ = 0;                                                          \
    for (;;) {                                                            \
      if (cond) { ok_ = 1; break; }                                       \
      if (tu_now_ms() > end_) break;                                      \
      tu_sleep_ms(2);                                                     \
    }                                                                     \
    ok_;                                                                  \
  })

static inline int pu_exec(sqlite3 *db, const char *sql)
{
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    fprintf(stderr, "[%s] exec \"%s\": %d %s\n", tu_current, sql, rc, msg ? msg : "");
  sqlite3_free(msg);
  return rc;
}

/* The first column of the first row as an integer (-1 on error/no row). */
static inline long long pu_int(sqlite3 *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* An independent connection (not from any pool). */
static inline sqlite3 *pu_own(const char *path)
{
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    fprintf(stderr, "[%s] sqlite3_open_v2(%s): %s\n", tu_current, path,
            db ? sqlite3_errmsg(db) : "?");
    tu_failures++;
  }
  return db;
}

/* Does this connection carry the temp-table marker NAME? (A way to tell
** connections apart that survives pointer reuse by malloc.) */
static inline int pu_has_marker(sqlite3 *db, const char *name)
{
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM temp.sqlite_master WHERE name='%s'", name);
  return pu_int(db, sql) == 1;
}

static inline void pu_mark(sqlite3 *db, const char *name)
{
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE TEMP TABLE %s(x)", name);
  pu_exec(db, sql);
}

/* ------------------------------------------------ a counting VFS shim */

/* Counts main-database files open through it (one per SQLite connection),
** in memory that can be shared with children: increments inside
** sqlite3_open_v2 (after the pool took its host slot), decrements inside
** sqlite3_close (before the pool gives the slot back). */
typedef struct pu_counts {
  _Atomic int open_now;  /* main database files open now */
  _Atomic int peak;      /* highest open_now seen */
  _Atomic int over;      /* opens that found open_now > limit */
  _Atomic int limit;     /* 0 = no limit check */
  _Atomic long opens;
} pu_counts;

static sqlite3_vfs pu_vfs_obj;
static sqlite3_vfs *pu_vfs_real;
static pu_counts *pu_cnt;
static pthread_mutex_t pu_vfs_mu = PTHREAD_MUTEX_INITIALIZER;
static sqlite3_io_methods pu_methods[4];
static const sqlite3_io_methods *pu_methods_real[4];
static int pu_nmethods;

typedef struct pu_tail {
  const sqlite3_io_methods *real;
} pu_tail;

static inline size_t pu_tail_off(void) { return ((size_t)pu_vfs_real->szOsFile + 15) & ~(size_t)15; }
static inline pu_tail *pu_tail_of(sqlite3_file *f) { return (pu_tail *)((char *)f + pu_tail_off()); }

static int pu_xclose(sqlite3_file *f)
{
  const sqlite3_io_methods *real = pu_tail_of(f)->real;
  atomic_fetch_sub(&pu_cnt->open_now, 1);
  f->pMethods = real;
  return real->xClose(f);
}

static int pu_xopen(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
  (void)vfs;
  int rc = pu_vfs_real->xOpen(pu_vfs_real, name, f, flags, out);
  if (rc != SQLITE_OK || !f->pMethods || !(flags & SQLITE_OPEN_MAIN_DB)) return rc;
  const sqlite3_io_methods *real = f->pMethods;
  pthread_mutex_lock(&pu_vfs_mu);
  int k = 0;
  while (k < pu_nmethods && pu_methods_real[k] != real) k++;
  if (k == pu_nmethods && k < 4) {
    pu_methods_real[k] = real;
    pu_methods[k] = *real;
    pu_methods[k].xClose = pu_xclose;
    pu_nmethods++;
  }
  pthread_mutex_unlock(&pu_vfs_mu);
  if (k >= 4) return rc; /* not counted (never happens with the unix VFS) */
  pu_tail_of(f)->real = real;
  f->pMethods = &pu_methods[k];
  int now = atomic_fetch_add(&pu_cnt->open_now, 1) + 1;
  atomic_fetch_add(&pu_cnt->opens, 1);
  int peak = atomic_load(&pu_cnt->peak);
  while (now > peak && !atomic_compare_exchange_weak(&pu_cnt->peak, &peak, now)) {
  }
  int limit = atomic_load(&pu_cnt->limit);
  if (limit > 0 && now > limit) atomic_fetch_add(&pu_cnt->over, 1);
  return rc;
}

/* Register the shim as VFS "pu_count" (not the default), counting into
** counts (which may be MAP_SHARED memory). Idempotent. */
static inline void pu_count_vfs_install(pu_counts *counts)
{
  pu_cnt = counts;
  if (pu_vfs_real) return;
  pu_vfs_real = sqlite3_vfs_find(NULL);
  REQUIRE(pu_vfs_real != NULL);
  pu_vfs_obj = *pu_vfs_real;
  pu_vfs_obj.zName = "pu_count";
  pu_vfs_obj.szOsFile = (int)(pu_tail_off() + sizeof(pu_tail));
  pu_vfs_obj.xOpen = pu_xopen;
  pu_vfs_obj.pNext = NULL;
  REQUIRE(sqlite3_vfs_register(&pu_vfs_obj, 0) == SQLITE_OK);
}

/* The built extension's absolute path, without ".so" (as SQLite takes it). */
static inline int pu_ext_path(char *out, size_t cap)
{
  const char *b = getenv("B") ? getenv("B") : "build";
  char dir[PATH_MAX];
  if (!realpath(b, dir) || strlen(dir) + 8 > cap) {
    fprintf(stderr, "no build directory %s\n", b);
    return -1;
  }
  memcpy(out, dir, strlen(dir));
  memcpy(out + strlen(dir), "/dbpool", 8);
  return 0;
}

#endif
