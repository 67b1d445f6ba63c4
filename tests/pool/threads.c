/*
** threads.c -- the pool under many threads in one process.
**
** Checks:
**   - hammer: 16 threads on a pool of 4 (acquire, query, release; some
**     releases dirty, some acquires try-once): no sqlite3* is ever held by
**     two threads at once (a per-handle owner word, claimed with a CAS after
**     acquire and cleared before release), never more than max_size are
**     checked out (a counter of ours) or open (a counting VFS shim), every
**     thread makes progress, and the final statistics agree with what the
**     threads saw (checkouts, timeouts, resets, active 0, no misuse);
**   - FIFO: with the pool full, threads that start waiting in a known order
**     (each one after the previous is counted in stats.waiting) are served
**     in that order, and one that times out in the middle of the queue
**     leaves it without disturbing the order of the others;
**   - a thread that has been waiting is not overtaken by a later
**     try-once acquire when a connection comes back.
*/
#include <pthread.h>

#include "poolutil.h"

/* ------------------------------------------------------- owner words */

#define NH 64
static struct {
  _Atomic(sqlite3 *) key;
  _Atomic int owner;
} H[NH];
static _Atomic int g_overflow;

static _Atomic int *owner_word(sqlite3 *db)
{
  for (int i = 0; i < NH; i++) {
    sqlite3 *k = atomic_load(&H[i].key);
    if (k == db) return &H[i].owner;
    if (k == NULL) {
      sqlite3 *expect = NULL;
      if (atomic_compare_exchange_strong(&H[i].key, &expect, db) || expect == db)
        return &H[i].owner;
    }
  }
  atomic_fetch_add(&g_overflow, 1);
  return NULL;
}

/* ------------------------------------------------------------- hammer */

#define NT 16
#define MAXSZ 4

typedef struct {
  dbpool *p;
  int id;
  long ok, busy, dirty, errors;
  long double_owner, too_many, bad_result;
  char err[256];
} hammer_arg;

static _Atomic int g_out, g_out_peak;
static _Atomic int g_stop;

static void *hammer(void *arg)
{
  hammer_arg *a = arg;
  int tid = pu_gettid();
  unsigned seed = (unsigned)a->id * 2654435761u;
  while (!atomic_load(&g_stop)) {
    sqlite3 *db = NULL;
    int r = rand_r(&seed) % 100;
    int rc = r < 10 ? dbpool_acquire_timeout(a->p, &db, 0)
                    : dbpool_acquire_timeout(a->p, &db, (int)tu_ms(20000));
    if (rc == SQLITE_BUSY) {
      a->busy++;
      continue;
    }
    if (rc != SQLITE_OK || !db) {
      if (!a->errors++) snprintf(a->err, sizeof a->err, "acquire %d: %s", rc, dbpool_errmsg(a->p));
      continue;
    }
    a->ok++;
    int out = atomic_fetch_add(&g_out, 1) + 1;
    if (out > MAXSZ) a->too_many++;
    int peak = atomic_load(&g_out_peak);
    while (out > peak && !atomic_compare_exchange_weak(&g_out_peak, &peak, out)) {
    }
    _Atomic int *ow = owner_word(db);
    int expect = 0;
    if (ow && !atomic_compare_exchange_strong(ow, &expect, tid)) a->double_owner++;

    /* Use it: a query, sometimes left dirty. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT x FROM t ORDER BY x", -1, &st, NULL) != SQLITE_OK) {
      a->bad_result++;
    } else {
      int n = 0;
      if (r % 10 == 1) {
        /* Leave a transaction open (with its read lock): the release must
        ** roll it back before anyone else gets the connection. */
        sqlite3_finalize(st);
        st = NULL;
        if (sqlite3_exec(db, "BEGIN; SELECT count(*) FROM t", NULL, NULL, NULL) != SQLITE_OK)
          a->bad_result++;
        a->dirty++;
      } else {
        while (sqlite3_step(st) == SQLITE_ROW) n++;
        if (n != 3) a->bad_result++;
        sqlite3_finalize(st);
      }
    }
    if (r % 7 == 0) sched_yield();
    if (ow && atomic_load(ow) != tid) a->double_owner++;
    if (ow) atomic_store(ow, 0);
    atomic_fetch_sub(&g_out, 1);
    rc = dbpool_release(a->p, db);
    if (rc != SQLITE_OK && !a->errors++)
      snprintf(a->err, sizeof a->err, "release %d: %s", rc, dbpool_errmsg(a->p));
  }
  return NULL;
}

TEST(hammer_one_pool)
{
  const char *path = tu_db("hammer.db");
  sqlite3 *own = pu_own(path);
  pu_exec(own, "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2),(3)");
  sqlite3_close(own);

  static pu_counts counts;
  memset(&counts, 0, sizeof counts);
  atomic_store(&counts.limit, MAXSZ);
  pu_count_vfs_install(&counts);

  dbpool_config cfg = pu_config(MAXSZ);
  cfg.vfs = "pu_count";
  dbpool *p = pu_open(path, &cfg);

  pthread_t th[NT];
  hammer_arg args[NT];
  memset(args, 0, sizeof args);
  atomic_store(&g_stop, 0);
  for (int i = 0; i < NT; i++) {
    args[i].p = p;
    args[i].id = i + 1;
    REQUIRE(pthread_create(&th[i], NULL, hammer, &args[i]) == 0);
  }
  tu_sleep_ms(2000);
  atomic_store(&g_stop, 1);
  long ok = 0, busy = 0, dirty = 0, min_ok = -1;
  for (int i = 0; i < NT; i++) {
    pthread_join(th[i], NULL);
    hammer_arg *a = &args[i];
    ok += a->ok;
    busy += a->busy;
    dirty += a->dirty;
    if (min_ok < 0 || a->ok < min_ok) min_ok = a->ok;
    CHECK_CMP(a->errors, ==, 0);
    if (a->errors) fprintf(stderr, "  thread %d: %s\n", a->id, a->err);
    CHECK_CMP(a->double_owner, ==, 0);
    CHECK_CMP(a->too_many, ==, 0);
    CHECK_CMP(a->bad_result, ==, 0);
  }
  CHECK_CMP(atomic_load(&g_overflow), ==, 0);
  CHECK_CMP(min_ok, >, 0); /* every thread made progress */
  CHECK_CMP(atomic_load(&g_out_peak), <=, MAXSZ);
  printf("  hammer: %ld checkouts (slowest thread %ld), %ld try-once busy, %ld dirty\n",
         ok, min_ok, busy, dirty);

  dbpool_stats st = pu_stats(p);
  CHECK_CMP(st.checkouts, ==, ok);
  CHECK_CMP(st.timeouts, ==, busy);
  CHECK_CMP(st.resets, ==, dirty);
  CHECK(st.active == 0 && st.waiting == 0 && st.misuses == 0);
  CHECK_CMP(st.total, <=, MAXSZ);
  CHECK_CMP(st.idle, ==, st.total);
  CHECK_CMP(st.created, ==, st.total); /* nothing had a reason to close */
  CHECK_CMP(st.closed, ==, 0);
  CHECK_CMP(st.open_failures, ==, 0);
  /* The shim's view. */
  CHECK_CMP(atomic_load(&counts.peak), <=, MAXSZ);
  CHECK_CMP(atomic_load(&counts.over), ==, 0);
  CHECK_CMP(atomic_load(&counts.open_now), ==, st.total);
  CHECK_CMP(pu_host(path).active, ==, st.total);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(atomic_load(&counts.open_now), ==, 0);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

/* --------------------------------------------------------------- FIFO */

typedef struct {
  dbpool *p;
  int id;
  int timeout_ms;
  int rc;
  int hold_ms;
  _Atomic int *hold_until; /* if set: hold until it is nonzero (at most 20 s) */
} fifo_arg;

static _Atomic int g_order[32], g_norder;

static void *fifo_waiter(void *arg)
{
  fifo_arg *a = arg;
  sqlite3 *db = NULL;
  a->rc = dbpool_acquire_timeout(a->p, &db, a->timeout_ms);
  if (a->rc != SQLITE_OK) return NULL;
  int pos = atomic_fetch_add(&g_norder, 1);
  if (pos < 32) atomic_store(&g_order[pos], a->id);
  tu_sleep_ms(a->hold_ms);
  if (a->hold_until) pu_wait(atomic_load(a->hold_until), 20000);
  dbpool_release(a->p, db);
  return NULL;
}

static int waiting_of(dbpool *p) { return pu_stats(p).waiting; }

TEST(fifo_among_waiters)
{
  const char *path = tu_db("fifo.db");
  dbpool_config cfg = pu_config(2);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a, *b;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);

  enum { NW = 8 };
  pthread_t th[NW];
  fifo_arg args[NW];
  atomic_store(&g_norder, 0);
  int started = 0;
  for (int i = 0; i < NW; i++) {
    args[i] = (fifo_arg){.p = p, .id = i, .timeout_ms = (int)tu_ms(20000), .hold_ms = 2};
    REQUIRE(pthread_create(&th[i], NULL, fifo_waiter, &args[i]) == 0);
    started++;
    if (!pu_wait(waiting_of(p) == i + 1, 5000)) {
      CHECK(!"waiter did not show in stats.waiting");
      break;
    }
  }
  tu_sleep_ms(20);
  CHECK_CMP(waiting_of(p), ==, NW);
  /* One connection comes back; it goes down the queue one waiter at a
  ** time (b stays out, so no two waiters are served at once). */
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  CHECK_CMP(atomic_load(&g_norder), ==, NW);
  for (int i = 0; i < NW; i++) {
    CHECK_CODE(args[i].rc, SQLITE_OK);
    CHECK_CMP(atomic_load(&g_order[i]), ==, i);
  }
  dbpool_stats st = pu_stats(p);
  CHECK(st.checkouts == NW + 2 && st.waiting == 0 && st.active == 1 && st.timeouts == 0);
  CHECK(st.created == 2);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(fifo_with_a_timeout_in_the_middle)
{
  const char *path = tu_db("fifo2.db");
  dbpool_config cfg = pu_config(1);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  enum { NW = 5 };
  pthread_t th[NW];
  fifo_arg args[NW];
  atomic_store(&g_norder, 0);
  for (int i = 0; i < NW; i++) {
    /* Waiter 2 gives up after 200 ms; the others wait long. */
    args[i] = (fifo_arg){.p = p, .id = i, .timeout_ms = i == 2 ? 200 : (int)tu_ms(20000), .hold_ms = 2};
    REQUIRE(pthread_create(&th[i], NULL, fifo_waiter, &args[i]) == 0);
    REQUIRE(pu_wait(waiting_of(p) == i + 1, 5000));
  }
  pthread_join(th[2], NULL);
  CHECK_CODE(args[2].rc, SQLITE_BUSY);
  CHECK_CMP(waiting_of(p), ==, NW - 1);
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  for (int i = 0; i < NW; i++)
    if (i != 2) pthread_join(th[i], NULL);
  int want[] = {0, 1, 3, 4};
  CHECK_CMP(atomic_load(&g_norder), ==, 4);
  for (int i = 0; i < 4; i++) CHECK_CMP(atomic_load(&g_order[i]), ==, want[i]);
  dbpool_stats st = pu_stats(p);
  CHECK(st.timeouts == 1 && st.checkouts == 5 && st.waiting == 0 && st.idle == 1);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(waiter_not_overtaken)
{
  const char *path = tu_db("overtake.db");
  dbpool_config cfg = pu_config(1);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a, *x = NULL;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  for (int round = 0; round < 20; round++) {
    pthread_t th;
    /* The waiter holds until the late arrival has tried: however long this
    ** thread is descheduled, the only way to succeed is to overtake. */
    _Atomic int tried = 0;
    fifo_arg arg = {.p = p, .id = round, .timeout_ms = (int)tu_ms(20000), .hold_until = &tried};
    atomic_store(&g_norder, 0);
    REQUIRE(pthread_create(&th, NULL, fifo_waiter, &arg) == 0);
    REQUIRE(pu_wait(waiting_of(p) == 1, 5000));
    tu_sleep_ms(20); /* it has been waiting a while */
    CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
    /* A later arrival trying once must not take it from the waiter. */
    int rc = dbpool_acquire_timeout(p, &x, 0);
    CHECK_SQ(rc, SQLITE_BUSY);
    if (rc == SQLITE_OK) dbpool_release(p, x);
    atomic_store(&tried, 1);
    pthread_join(th, NULL);
    CHECK_CODE(arg.rc, SQLITE_OK);
    CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  }
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

int main(void)
{
  tu_init("pool-threads");
  alarm(tu_sec(120));
  RUN(hammer_one_pool);
  RUN(fifo_among_waiters);
  RUN(fifo_with_a_timeout_in_the_middle);
  RUN(waiter_not_overtaken);
  return tu_finish();
}
