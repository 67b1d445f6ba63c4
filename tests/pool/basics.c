/*
** basics.c -- the in-process pool's API, one behaviour per test, mostly from
** one thread (include/dbpool.h is the contract).
**
** Checks:
**   - bad configurations are refused with SQLITE_MISUSE and a message naming
**     the field; a missing database without SQLITE_OPEN_CREATE is
**     SQLITE_CANTOPEN;
**   - pool timeouts: a full pool makes dbpool_acquire_timeout return
**     SQLITE_BUSY no sooner than asked (and well within a generous bound),
**     with a message naming the pool's database; timeout 0 tries once;
**     dbpool_acquire uses acquire_timeout_ms; stats.timeouts counts them;
**   - host timeouts: with the host cap below max_size and the host slots
**     held by other holders, acquire returns SQLITE_BUSY with the
**     coordinator's "pool full: all N connections to PATH are in use (waited X ms)";
**   - a thread waiting for a host slot gets a connection when another
**     thread of its pool releases one (with min_idle 0 and 1);
**   - paths with spaces, '?', '#' and '%' open the right file;
**   - a host pool force-removed under the pool is rejoined: the pool keeps
**     working and the new host pool's cap applies;
**   - release resets: an open transaction is rolled back (an independent
**     connection can write at once and does not see the row; on the next
**     checkout the connection is in autocommit mode), a statement left
**     running is reset (its read lock is gone), and a connection that cannot
**     be rolled back is closed (closed_reset_failed), its host slot given
**     back, and never handed out again;
**   - misuse: releasing a foreign connection (left untouched, still in its
**     transaction), NULL, a connection of another pool, or one released
**     already returns SQLITE_MISUSE with a message, counts in misuses and
**     changes nothing else;
**   - init_sql and open failures return the SQLite error and message,
**     count in open_failures and give the host slot back;
**   - validation_sql: a connection that fails it is closed (closed_broken,
**     validations_failed) and another one is handed out; passes are
**     counted; a validation query that fails on every connection still lets
**     dbpool_acquire return (an error) within a bounded time.
*/
#include <pthread.h>

#include "poolutil.h"

/* ---------------------------------------------------------------- config */

TEST(bad_config_is_refused)
{
  const char *path = tu_db("config.db");
  dbpool_config cfg;
  dbpool *p = (dbpool *)1;

  dbpool_config_init(&cfg);
  CHECK(cfg.max_size == 10 && cfg.min_idle == 0 && cfg.acquire_timeout_ms == 5000);
  CHECK(cfg.idle_timeout_ms == 600000 && cfg.max_lifetime_ms == 1800000);
  CHECK(cfg.leak_threshold_ms == 0 && cfg.close_timeout_ms == 5000);

  cfg.max_size = 0;
  CHECK_SQ(dbpool_open(path, &cfg, &p), SQLITE_MISUSE);
  CHECK(p == NULL);
  CHECK_HAS(dbpool_errmsg(NULL), "max_size=0");

  dbpool_config_init(&cfg);
  cfg.min_idle = 11;
  CHECK_SQ(dbpool_open(path, &cfg, &p), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(NULL), "min_idle=11");

  dbpool_config_init(&cfg);
  cfg.idle_timeout_ms = -1;
  CHECK_SQ(dbpool_open(path, &cfg, &p), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(NULL), "idle_timeout_ms=-1");

  dbpool_config_init(&cfg);
  cfg.open_flags = SQLITE_OPEN_CREATE;
  CHECK_SQ(dbpool_open(path, &cfg, &p), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(NULL), "open_flags");

  /* No such file, and not allowed to create it. */
  char missing[512];
  snprintf(missing, sizeof missing, "%s/missing.db", tu_dir);
  dbpool_config_init(&cfg);
  cfg.open_flags = SQLITE_OPEN_READWRITE;
  p = (dbpool *)1;
  CHECK_SQ(dbpool_open(missing, &cfg, &p), SQLITE_CANTOPEN);
  CHECK(p == NULL);
  CHECK(access(missing, F_OK) != 0);

  /* With CREATE (the default) it is created. */
  CHECK_SQ(dbpool_open(missing, NULL, &p), SQLITE_OK);
  CHECK(access(missing, F_OK) == 0);
  dbpool_stats st = pu_stats(p);
  CHECK(st.max_size == 10 && st.total == 0 && st.idle == 0 && st.created == 0);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_SQ(dbpool_close(NULL), SQLITE_OK);
}

/* -------------------------------------------------------------- timeouts */

TEST(pool_timeout)
{
  const char *path = tu_db("ptimeout.db");
  dbpool_config cfg = pu_config(1);
  cfg.acquire_timeout_ms = 150;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a = NULL, *b = (sqlite3 *)1;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK(a != NULL);

  double t0 = tu_now_ms();
  CHECK_SQ(dbpool_acquire_timeout(p, &b, 200), SQLITE_BUSY);
  double took = tu_now_ms() - t0;
  CHECK(b == NULL);
  CHECK_CMP(took * 1000, >=, 200 * 1000);
  CHECK_CMP(took, <, tu_ms(3000));
  CHECK_HAS(dbpool_errmsg(p), DBPOOL_POOL_FULL_PREFIX "no connection of the pool");
  CHECK_HAS(dbpool_errmsg(p), path);

  /* 0 tries once. */
  b = (sqlite3 *)1;
  t0 = tu_now_ms();
  CHECK_SQ(dbpool_acquire_timeout(p, &b, 0), SQLITE_BUSY);
  took = tu_now_ms() - t0;
  CHECK(b == NULL);
  CHECK_CMP(took, <, tu_ms(1000));
  CHECK_HAS(dbpool_errmsg(p), path);
  CHECK_HAS(dbpool_errmsg(p), DBPOOL_POOL_FULL_PREFIX "all 1 connections of the pool");

  /* dbpool_acquire uses acquire_timeout_ms. */
  t0 = tu_now_ms();
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_BUSY);
  took = tu_now_ms() - t0;
  CHECK_CMP(took * 1000, >=, 150 * 1000);
  CHECK_CMP(took, <, tu_ms(3000));

  dbpool_stats st = pu_stats(p);
  CHECK_CMP(st.timeouts, ==, 3);
  CHECK_CMP(st.checkouts, ==, 1);
  CHECK(st.active == 1 && st.waiting == 0 && st.total == 1 && st.created == 1);

  /* Once released, it is there at once. */
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire_timeout(p, &b, 0), SQLITE_OK);
  CHECK(b == a);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  st = pu_stats(p);
  CHECK(st.timeouts == 3 && st.checkouts == 2 && st.active == 0 && st.idle == 1);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(host_timeout)
{
  const char *path = tu_db("htimeout.db");
  char real[PATH_MAX], want[PATH_MAX + 64];
  REQUIRE(realpath(path, real) != NULL);
  dbpool_coord *c;
  dbpool_holder *h1, *h2;
  REQUIRE(dbpool_coord_open(path, 0, &c) == 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 2), 0);
  CHECK_RC(dbpool_holder_new(c, &h1), 0);
  CHECK_RC(dbpool_holder_new(c, &h2), 0);
  CHECK_RC(dbpool_holder_acquire(h1, 0), 0);
  CHECK_RC(dbpool_holder_acquire(h2, 0), 0);

  dbpool_config cfg;
  dbpool_config_init(&cfg);
  cfg.max_size = 4; /* above the host cap */
  cfg.acquire_timeout_ms = 300;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db = (sqlite3 *)1;
  double t0 = tu_now_ms();
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_BUSY);
  double took = tu_now_ms() - t0;
  CHECK(db == NULL);
  CHECK_CMP(took * 1000, >=, 300 * 1000);
  CHECK_CMP(took, <, tu_ms(5000));
  snprintf(want, sizeof want, "dbpool: pool full: all 2 connections to %s are in use (waited ", real);
  CHECK_HAS(dbpool_errmsg(p), want);

  /* Tries once. */
  t0 = tu_now_ms();
  CHECK_SQ(dbpool_acquire_timeout(p, &db, 0), SQLITE_BUSY);
  CHECK_CMP(tu_now_ms() - t0, <, tu_ms(1000));
  CHECK_HAS(dbpool_errmsg(p), want);

  dbpool_stats st = pu_stats(p);
  CHECK_CMP(st.timeouts, ==, 2);
  CHECK(st.total == 0 && st.active == 0 && st.checkouts == 0 && st.created == 0);
  CHECK_CMP(st.open_failures, ==, 0);
  dbpool_host_stats hs = pu_host(path);
  CHECK(hs.active == 2 && hs.waiting == 0);

  /* A slot comes free: the pool gets it. */
  CHECK_RC(dbpool_holder_release(h1), 0);
  CHECK_SQ(dbpool_acquire_timeout(p, &db, (int)tu_ms(1000)), SQLITE_OK);
  hs = pu_host(path);
  CHECK(hs.active == 2);
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  hs = pu_host(path);
  CHECK(hs.active == 1);
  dbpool_holder_free(h1);
  dbpool_holder_free(h2);
  dbpool_coord_close(c);
}

/* A thread of the pool waiting for a host slot gets the pool's own
** connection when another thread of the pool releases one: "waiting up to
** acquire_timeout_ms for one of this pool's connections or for a host
** slot" (dbpool.h). With min_idle = 1 the released connection is kept idle
** (not given back to the host), so the waiter must get it some other way. */
typedef struct {
  dbpool *p;
  int timeout_ms, rc;
  double took;
  _Atomic int done;
  char msg[256];
} host_waiter_arg;

static void *host_waiter(void *arg)
{
  host_waiter_arg *a = arg;
  sqlite3 *db = NULL;
  double t0 = tu_now_ms();
  a->rc = dbpool_acquire_timeout(a->p, &db, a->timeout_ms);
  a->took = tu_now_ms() - t0;
  snprintf(a->msg, sizeof a->msg, "%s", dbpool_errmsg(a->p));
  if (db) dbpool_release(a->p, db);
  atomic_store(&a->done, 1);
  return NULL;
}

TEST(host_waiter_gets_the_pools_idle_connection)
{
  for (int min_idle = 0; min_idle <= 1; min_idle++) {
    char name[64];
    snprintf(name, sizeof name, "hostwait%d.db", min_idle);
    const char *path = tu_db(name);
    pu_set_host_cap(path, 1);
    dbpool_config cfg;
    dbpool_config_init(&cfg);
    cfg.max_size = 2; /* above the host cap: the waiter opens, so waits for the host */
    cfg.min_idle = min_idle;
    dbpool *p = pu_open(path, &cfg);
    sqlite3 *a;
    CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
    host_waiter_arg w = {.p = p, .timeout_ms = (int)tu_ms(3000)};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, host_waiter, &w) == 0);
    REQUIRE(pu_wait(pu_host(path).waiting == 1, 5000));
    CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
    REQUIRE(pu_wait(atomic_load(&w.done), 10000));
    pthread_join(th, NULL);
    CHECK_CODE(w.rc, SQLITE_OK);
    CHECK_CMP(w.took, <, tu_ms(2500));
    if (w.rc != SQLITE_OK)
      fprintf(stderr, "  min_idle=%d: waiter got %d after %.0f ms: %s\n", min_idle, w.rc,
              w.took, w.msg);
    dbpool_stats st = pu_stats(p);
    CHECK(st.active == 0 && st.waiting == 0 && st.total <= 1);
    CHECK_CMP(pu_host(path).active, <=, 1);
    CHECK_SQ(dbpool_close(p), SQLITE_OK);
    CHECK_CMP(pu_host(path).active, ==, 0);
  }
}

/* Paths with characters that mean something in a URI reach the right file. */
TEST(odd_path)
{
  char dir[600], path[700];
  snprintf(dir, sizeof dir, "%s/we ird?#%%25dir", tu_dir);
  REQUIRE(mkdir(dir, 0755) == 0);
  snprintf(path, sizeof path, "%s/da ta?x=1#frag%%20.db", dir);
  sqlite3 *own = NULL;
  REQUIRE(sqlite3_open_v2(path, &own, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK);
  pu_exec(own, "CREATE TABLE here(x); INSERT INTO here VALUES(42)");
  sqlite3_close(own);
  dbpool_config cfg;
  dbpool_config_init(&cfg);
  cfg.open_flags = SQLITE_OPEN_READWRITE; /* no CREATE: a wrong name fails */
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  if (db) {
    CHECK_CMP(pu_int(db, "SELECT x FROM here"), ==, 42);
    CHECK_STR(sqlite3_db_filename(db, "main"), path);
    CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  }
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

/* The host pool is force-removed under the pool (dbpoolctl rm --force):
** the pool keeps working and moves into the new host pool, where every
** connection it has open is counted again: the housekeeper closes the idle
** ones and marks the checked-out ones, which close when released; new ones
** open under the new pool's cap (include/dbpool_coord.h,
** dbpool_coord_remove). */
TEST(removed_host_pool_is_rejoined)
{
  const char *path = tu_db("rejoin.db");
  dbpool_config cfg = pu_config(4);
  cfg.acquire_timeout_ms = 300;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a, *b, *c, *d, *e;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK); /* a out, b idle */
  CHECK_RC(dbpool_coord_remove(path, NULL, 1), 0);

  /* The idle one goes (the removal wakes the housekeeper). */
  double end = tu_now_ms() + tu_ms(10000);
  while (pu_stats(p).closed_broken < 1 && tu_now_ms() < end) tu_sleep_ms(5);
  CHECK_CMP(pu_stats(p).closed_broken, ==, 1);
  CHECK_SQ(dbpool_acquire(p, &c), SQLITE_OK);
  CHECK_SQ(pu_exec(c, "SELECT 1"), SQLITE_OK);
  dbpool_host_stats hs = pu_host(path);
  CHECK_CMP(hs.active, ==, 1); /* c, in the new pool */
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK); /* closed: it was never counted there */
  CHECK_CMP(pu_stats(p).closed_broken, ==, 2);
  CHECK_SQ(dbpool_acquire(p, &d), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 2); /* c and d: all it has open, counted */

  /* The new pool's cap applies. */
  pu_set_host_cap(path, 2);
  CHECK_SQ(dbpool_acquire(p, &e), SQLITE_BUSY);
  CHECK_HAS(dbpool_errmsg(p), "all 2 connections to");
  CHECK_SQ(dbpool_release(p, d), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &e), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, <=, 2);
  CHECK_SQ(dbpool_release(p, e), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, c), SQLITE_OK);
  dbpool_stats st = pu_stats(p);
  CHECK(st.active == 0 && st.misuses == 0);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  hs = pu_host(path);
  CHECK(hs.active == 0 && hs.waiting == 0);
}

/* ---------------------------------------------------------------- resets */

static void make_table(const char *path)
{
  sqlite3 *own = pu_own(path);
  pu_exec(own, "CREATE TABLE IF NOT EXISTS t(x); DELETE FROM t;"
               "INSERT INTO t VALUES(1),(2),(3)");
  sqlite3_close(own);
}

TEST(release_rolls_back_a_transaction)
{
  const char *path = tu_db("rollback.db");
  make_table(path);
  dbpool_config cfg = pu_config(1);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db, *db2;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  pu_mark(db, "first");
  CHECK_SQ(pu_exec(db, "BEGIN; INSERT INTO t VALUES(42)"), SQLITE_OK);
  CHECK(sqlite3_get_autocommit(db) == 0);
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);

  /* Independently: no lock left behind, and the row is not there. */
  sqlite3 *own = pu_own(path);
  CHECK_CMP(pu_int(own, "SELECT count(*) FROM t WHERE x=42"), ==, 0);
  CHECK_SQ(pu_exec(own, "INSERT INTO t VALUES(7)"), SQLITE_OK);
  CHECK_SQ(pu_exec(own, "DELETE FROM t WHERE x=7"), SQLITE_OK);
  sqlite3_close(own);

  dbpool_stats st = pu_stats(p);
  CHECK_CMP(st.resets, ==, 1);
  CHECK(st.idle == 1 && st.closed == 0 && st.closed_reset_failed == 0);

  CHECK_SQ(dbpool_acquire(p, &db2), SQLITE_OK);
  CHECK(db2 == db && pu_has_marker(db2, "first")); /* reused, not reopened */
  CHECK(sqlite3_get_autocommit(db2) == 1);
  CHECK_CMP(pu_int(db2, "SELECT count(*) FROM t WHERE x=42"), ==, 0);
  CHECK_SQ(dbpool_release(p, db2), SQLITE_OK);
  st = pu_stats(p);
  CHECK_CMP(st.resets, ==, 1); /* a clean release is not a reset */
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(release_resets_a_running_statement)
{
  const char *path = tu_db("stmt.db");
  make_table(path);
  dbpool_config cfg = pu_config(1);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db, *db2;
  sqlite3_stmt *stmt = NULL;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  CHECK_SQ(sqlite3_prepare_v2(db, "SELECT x FROM t ORDER BY x", -1, &stmt, NULL), SQLITE_OK);
  CHECK_SQ(sqlite3_step(stmt), SQLITE_ROW);
  CHECK(sqlite3_stmt_busy(stmt));
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);

  /* The statement's read lock is gone: a writer commits at once (a rollback
  ** journal writer needs every reader gone; busy_timeout is 0). */
  sqlite3 *own = pu_own(path);
  CHECK_SQ(pu_exec(own, "INSERT INTO t VALUES(4)"), SQLITE_OK);
  sqlite3_close(own);
  CHECK_CMP(pu_stats(p).resets, ==, 1);

  CHECK_SQ(dbpool_acquire(p, &db2), SQLITE_OK);
  CHECK(db2 == db);
  CHECK(sqlite3_stmt_busy(stmt) == 0);
  CHECK(sqlite3_get_autocommit(db2) == 1);
  CHECK_SQ(sqlite3_step(stmt), SQLITE_ROW); /* starts over */
  CHECK_CMP(sqlite3_column_int(stmt, 0), ==, 1);
  sqlite3_finalize(stmt);
  CHECK_SQ(dbpool_release(p, db2), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

static int deny_transactions(void *arg, int op, const char *a, const char *b,
                             const char *c, const char *d)
{
  (void)arg, (void)a, (void)b, (void)c, (void)d;
  return op == SQLITE_TRANSACTION ? SQLITE_DENY : SQLITE_OK;
}

TEST(release_closes_what_cannot_be_reset)
{
  const char *path = tu_db("doomed.db");
  make_table(path);
  dbpool_config cfg = pu_config(2);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db, *db2;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  pu_mark(db, "doomed");
  CHECK_SQ(pu_exec(db, "BEGIN; INSERT INTO t VALUES(99)"), SQLITE_OK);
  sqlite3_set_authorizer(db, deny_transactions, NULL);
  CHECK(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_AUTH); /* really stuck */
  CHECK(sqlite3_get_autocommit(db) == 0);
  CHECK_CMP(pu_host(path).active, ==, 1);
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);

  dbpool_stats st = pu_stats(p);
  CHECK_CMP(st.closed_reset_failed, ==, 1);
  CHECK_CMP(st.closed, ==, 1);
  CHECK(st.total == 0 && st.idle == 0 && st.active == 0);
  CHECK_CMP(st.resets, ==, 1);
  CHECK_CMP(pu_host(path).active, ==, 0); /* slot given back */

  /* Closed for real: its transaction is gone and it holds no lock. */
  sqlite3 *own = pu_own(path);
  CHECK_CMP(pu_int(own, "SELECT count(*) FROM t WHERE x=99"), ==, 0);
  CHECK_SQ(pu_exec(own, "INSERT INTO t VALUES(5)"), SQLITE_OK);
  sqlite3_close(own);

  /* Not handed out again; releasing the closed handle is refused. */
  CHECK_SQ(dbpool_release(p, db), SQLITE_MISUSE);
  CHECK_SQ(dbpool_acquire(p, &db2), SQLITE_OK);
  CHECK(!pu_has_marker(db2, "doomed"));
  CHECK(sqlite3_get_autocommit(db2) == 1);
  CHECK_SQ(dbpool_release(p, db2), SQLITE_OK);
  st = pu_stats(p);
  CHECK(st.created == 2 && st.closed == 1 && st.idle == 1);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

/* ---------------------------------------------------------------- misuse */

/* Everything but misuses and the wait-time figures. */
static int same_but_misuses(const dbpool_stats *a, const dbpool_stats *b)
{
  return a->active == b->active && a->idle == b->idle && a->total == b->total &&
         a->waiting == b->waiting && a->checkouts == b->checkouts &&
         a->timeouts == b->timeouts && a->created == b->created &&
         a->open_failures == b->open_failures && a->closed == b->closed &&
         a->resets == b->resets && a->leaks_reported == b->leaks_reported &&
         a->validations_passed == b->validations_passed &&
         a->validations_failed == b->validations_failed;
}

TEST(misuse_is_refused)
{
  const char *path = tu_db("misuse.db");
  const char *path2 = tu_db("misuse2.db");
  make_table(path);
  dbpool_config cfg = pu_config(2);
  dbpool *p = pu_open(path, &cfg);
  dbpool *q = pu_open(path2, &cfg);
  sqlite3 *a, *b;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK); /* one idle, one out */
  dbpool_stats st0 = pu_stats(p), st;

  /* A connection of our own, mid-transaction: the pool must not touch it. */
  sqlite3 *own = pu_own(path);
  CHECK_SQ(pu_exec(own, "BEGIN; INSERT INTO t VALUES(77)"), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, own), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(p), "not checked out");
  CHECK(sqlite3_get_autocommit(own) == 0);
  CHECK_CMP(pu_int(own, "SELECT count(*) FROM t WHERE x=77"), ==, 1);
  st = pu_stats(p);
  CHECK(st.misuses == st0.misuses + 1 && same_but_misuses(&st, &st0));

  CHECK_SQ(dbpool_release(p, NULL), SQLITE_MISUSE);
  CHECK(dbpool_errmsg(p)[0] != 0);
  st = pu_stats(p);
  CHECK(st.misuses == st0.misuses + 2 && same_but_misuses(&st, &st0));

  /* p's connection released to q: refused, still checked out of p. */
  CHECK_SQ(dbpool_release(q, a), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(q), "not checked out");
  st = pu_stats(p);
  CHECK(st.active == 1 && st.misuses == st0.misuses + 2);
  CHECK_CMP(pu_stats(q).misuses, ==, 1);

  /* The idle one released: not checked out. */
  CHECK_SQ(dbpool_release(p, b), SQLITE_MISUSE);
  st = pu_stats(p);
  CHECK(st.misuses == st0.misuses + 3 && same_but_misuses(&st, &st0));

  /* Twice. */
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  st0 = pu_stats(p);
  CHECK_SQ(dbpool_release(p, a), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(p), "not checked out");
  st = pu_stats(p);
  CHECK(st.misuses == st0.misuses + 1 && same_but_misuses(&st, &st0));
  CHECK(st.idle == 2 && st.active == 0);

  CHECK_SQ(dbpool_release(NULL, a), SQLITE_MISUSE);
  sqlite3 *x = (sqlite3 *)1;
  CHECK_SQ(dbpool_acquire(NULL, &x), SQLITE_MISUSE);
  CHECK_SQ(dbpool_acquire(p, NULL), SQLITE_MISUSE);
  dbpool_stats dummy;
  DBPOOL_INIT(&dummy);
  CHECK_SQ(dbpool_get_stats(NULL, &dummy), SQLITE_MISUSE);

  /* Our connection is as we left it. */
  CHECK(sqlite3_get_autocommit(own) == 0);
  CHECK_SQ(pu_exec(own, "ROLLBACK"), SQLITE_OK);
  sqlite3_close(own);

  /* The pool works as before. */
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  st = pu_stats(p);
  CHECK(st.created == 2 && st.idle == 2 && st.closed == 0);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_SQ(dbpool_close(q), SQLITE_OK);
}

/* ------------------------------------------------------- open failures */

TEST(init_sql_failure)
{
  const char *path = tu_db("initsql.db");
  dbpool_config cfg = pu_config(2);
  cfg.init_sql = "PRAGMA busy_timeout=100; SELECT * FROM no_such_table";
  dbpool *p = pu_open(path, &cfg);
  for (int i = 0; i < 2; i++) {
    sqlite3 *db = (sqlite3 *)1;
    CHECK_SQ(dbpool_acquire(p, &db), SQLITE_ERROR);
    CHECK(db == NULL);
    CHECK_HAS(dbpool_errmsg(p), "no such table: no_such_table");
    CHECK_HAS(dbpool_errmsg(p), path);
  }
  dbpool_stats st = pu_stats(p);
  CHECK_CMP(st.open_failures, ==, 2);
  CHECK(st.created == 0 && st.checkouts == 0 && st.total == 0 && st.active == 0);
  CHECK_CMP(st.timeouts, ==, 0);
  dbpool_host_stats hs = pu_host(path);
  CHECK_CMP(hs.active, ==, 0);
  CHECK_CMP(hs.total_acquired, ==, hs.total_released);
  CHECK_CMP(hs.total_acquired, ==, 2);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);

  /* init_sql that works runs once per new connection. */
  make_table(path);
  cfg.init_sql = "CREATE TEMP TABLE init_ran(x); INSERT INTO init_ran VALUES(1)";
  p = pu_open(path, &cfg);
  sqlite3 *db;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  CHECK_CMP(pu_int(db, "SELECT count(*) FROM init_ran"), ==, 1);
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  CHECK_CMP(pu_int(db, "SELECT count(*) FROM init_ran"), ==, 1);
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(open_failure)
{
  /* A VFS that does not exist: sqlite3_open_v2 fails every time. */
  const char *path = tu_db("openfail.db");
  dbpool_config cfg = pu_config(2);
  cfg.vfs = "no-such-vfs";
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db = (sqlite3 *)1;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_ERROR);
  CHECK(db == NULL);
  CHECK_HAS(dbpool_errmsg(p), "no such vfs");
  dbpool_stats st = pu_stats(p);
  CHECK(st.open_failures == 1 && st.created == 0 && st.total == 0);
  dbpool_host_stats hs = pu_host(path);
  CHECK(hs.active == 0 && hs.total_acquired == 1 && hs.total_released == 1);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);

  /* Read-only without CREATE, and the file gone after dbpool_open. */
  path = tu_db("vanished.db");
  char keep[600];
  snprintf(keep, sizeof keep, "%s.keep", path);
  dbpool_config_init(&cfg);
  cfg.open_flags = SQLITE_OPEN_READONLY;
  p = pu_open(path, &cfg);
  REQUIRE(link(path, keep) == 0 && unlink(path) == 0);
  db = (sqlite3 *)1;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_CANTOPEN);
  CHECK(db == NULL);
  CHECK_HAS(dbpool_errmsg(p), path);
  st = pu_stats(p);
  CHECK(st.open_failures == 1 && st.created == 0 && st.total == 0);
  CHECK(access(path, F_OK) != 0); /* not created */
  REQUIRE(link(keep, path) == 0 && unlink(keep) == 0);
  hs = pu_host(path);
  CHECK(hs.active == 0 && hs.total_acquired == hs.total_released);
  /* Back: it works. */
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

/* ------------------------------------------------------------ validation */

/* pu_ok(n): fails (at run time) unless n is 0. Registered on every new
** connection by an auto-extension, so that a validation query can fail for
** exactly the connections we choose (those with a temp table "poison"). */
static void pu_ok_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  (void)argc;
  if (sqlite3_value_int(argv[0]) != 0)
    sqlite3_result_error(ctx, "poisoned connection", -1);
  else
    sqlite3_result_int(ctx, 1);
}

static int register_pu_ok(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
  (void)err, (void)api;
  return sqlite3_create_function(db, "pu_ok", 1, SQLITE_UTF8, NULL, pu_ok_fn, NULL, NULL);
}

TEST(validation_replaces_bad_connections)
{
  const char *path = tu_db("validate.db");
  REQUIRE(sqlite3_auto_extension((void (*)(void))register_pu_ok) == SQLITE_OK);
  dbpool_config cfg = pu_config(2);
  cfg.validation_sql =
      "SELECT pu_ok((SELECT count(*) FROM temp.sqlite_master WHERE name='poison'))";
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a, *b;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK(b == a);
  dbpool_stats st = pu_stats(p);
  CHECK(st.validations_passed == 2 && st.validations_failed == 0);

  pu_mark(b, "poison");
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK(!pu_has_marker(b, "poison"));
  st = pu_stats(p);
  CHECK_CMP(st.validations_failed, ==, 1);
  CHECK_CMP(st.validations_passed, ==, 3);
  CHECK_CMP(st.closed_broken, ==, 1);
  CHECK(st.created == 2 && st.active == 1 && st.total == 1);
  /* "checkouts: successful acquires": three, however many connections the
  ** third one went through. */
  CHECK_CMP(st.checkouts, ==, 3);
  CHECK_CMP(pu_host(path).active, ==, 1);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  sqlite3_cancel_auto_extension((void (*)(void))register_pu_ok);
}

/* A validation query that can never pass: acquire must still give up within
** its timeout (here 300 ms; allowed up to 5 s), not retry forever. Runs in a
** child so that a pool looping forever fails the test instead of hanging. */
typedef struct {
  _Atomic int done;
  int rc;
  double took_ms;
  int active, host_active;
  char msg[256];
} vshared;

TEST(validation_always_failing_gives_up)
{
  const char *path = tu_db("validate_never.db");
  vshared *S = tu_shared(sizeof *S);
  memset(S, 0, sizeof *S);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(tu_sec(30));
    dbpool_config cfg = pu_config(2);
    cfg.acquire_timeout_ms = 300;
    cfg.validation_sql = "SELECT * FROM no_such_table";
    dbpool *p = NULL;
    if (dbpool_open(path, &cfg, &p) != SQLITE_OK) _exit(3);
    sqlite3 *db = NULL;
    double t0 = tu_now_ms();
    S->rc = dbpool_acquire(p, &db);
    S->took_ms = tu_now_ms() - t0;
    snprintf(S->msg, sizeof S->msg, "%s", dbpool_errmsg(p));
    dbpool_stats st;
    DBPOOL_INIT(&st);
    dbpool_get_stats(p, &st);
    S->active = st.active;
    atomic_store(&S->done, 1);
    if (db) dbpool_release(p, db);
    dbpool_close(p);
    _exit(0);
  }
  int status = tu_wait_child(pid, 8000);
  CHECK_CMP(status, ==, 0);
  CHECK(atomic_load(&S->done) == 1);
  if (atomic_load(&S->done)) {
    CHECK(S->rc != SQLITE_OK);
    CHECK_CMP(S->took_ms, <, tu_ms(5000));
    CHECK_CMP(S->active, ==, 0);
    if (S->rc == SQLITE_OK || S->took_ms >= tu_ms(5000))
      fprintf(stderr, "  acquire: rc %d after %.0f ms: %s\n", S->rc, S->took_ms, S->msg);
  } else {
    fprintf(stderr, "  dbpool_acquire with an always-failing validation_sql and "
                    "acquire_timeout_ms=300 did not return within 8 s\n");
  }
  /* Whatever happened there, no slot may stay held by the (dead) child. */
  dbpool_coord *c;
  if (dbpool_coord_open(path, 0, &c) == 0) {
    dbpool_coord_reap(c);
    dbpool_host_stats hs;
    DBPOOL_INIT(&hs);
    CHECK_RC(dbpool_coord_stats(c, &hs), 0);
    CHECK_CMP(hs.active, ==, 0);
    dbpool_coord_close(c);
  }
  munmap(S, sizeof *S);
}

int main(void)
{
  tu_init("pool-basics");
  alarm(tu_sec(120)); /* last resort: every wait above has its own bound */
  RUN(bad_config_is_refused);
  RUN(pool_timeout);
  RUN(host_timeout);
  RUN(host_waiter_gets_the_pools_idle_connection);
  RUN(odd_path);
  RUN(removed_host_pool_is_rejoined);
  RUN(release_rolls_back_a_transaction);
  RUN(release_resets_a_running_statement);
  RUN(release_closes_what_cannot_be_reset);
  RUN(misuse_is_refused);
  RUN(init_sql_failure);
  RUN(open_failure);
  RUN(validation_replaces_bad_connections);
  RUN(validation_always_failing_gives_up);
  return tu_finish();
}
