/*
** waiting.c -- threads waiting in dbpool_acquire_timeout, and dbpool_close
** while some wait or open.
**
** Checks:
**   - timeout -1 waits without a deadline: it opens a connection when it
**     may, and when the pool is full waits until a release hands it one;
**   - waiters leave the queue out of order: a later waiter with a short
**     timeout times out (SQLITE_BUSY, counted) while an earlier one with a
**     long timeout keeps its place and gets the next release;
**   - dbpool_close with two threads waiting: both return SQLITE_MISUSE
**     "closing" at once; close waits for the checked-out connection, whose
**     release during the close works, and then returns SQLITE_OK;
**   - dbpool_close that times out with connections still checked out says
**     how many ("1 connection", "2 connections"), leaves the pool usable
**     for releases, and succeeds once they are back;
**   - dbpool_close while a thread is opening a connection (its init_sql
**     blocked by another connection's lock): the opener's connection,
**     opened after the close began, is closed and its acquire returns
**     SQLITE_MISUSE "closing"; close then succeeds and the host pool holds
**     nothing.
*/
#include <pthread.h>

#include "poolutil.h"

typedef struct taker {
  dbpool *p;
  int timeout_ms;
  int rc;
  char msg[256];
  sqlite3 *db;
  pthread_t t;
  atomic_int done;
} taker;

static void *take(void *arg)
{
  taker *k = arg;
  k->rc = dbpool_acquire_timeout(k->p, &k->db, k->timeout_ms);
  snprintf(k->msg, sizeof k->msg, "%s", dbpool_errmsg(k->p));
  atomic_store(&k->done, 1);
  return NULL;
}

static void start(taker *k, dbpool *p, int timeout_ms)
{
  memset(k, 0, sizeof *k);
  k->p = p;
  k->timeout_ms = timeout_ms;
  REQUIRE(pthread_create(&k->t, NULL, take, k) == 0);
}

TEST(no_deadline_opens_then_waits)
{
  const char *path = tu_db("nodeadline.db");
  dbpool_config cfg = pu_config(1);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a;
  CHECK_SQ(dbpool_acquire_timeout(p, &a, -1), SQLITE_OK); /* opens one */
  CHECK_CMP(pu_stats(p).created, ==, 1);
  taker k;
  start(&k, p, -1);
  CHECK(pu_wait(pu_stats(p).waiting == 1, 10000));
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  pthread_join(k.t, NULL);
  CHECK_CODE(k.rc, SQLITE_OK);
  CHECK(k.db == a); /* the same connection, handed over */
  CHECK_SQ(dbpool_release(p, k.db), SQLITE_OK);
  dbpool_stats st = pu_stats(p);
  CHECK(st.created == 1 && st.timeouts == 0 && st.checkouts == 2);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(a_later_waiter_times_out_first)
{
  const char *path = tu_db("order.db");
  dbpool_config cfg = pu_config(1);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  taker early, late;
  start(&early, p, 20000);
  CHECK(pu_wait(pu_stats(p).waiting == 1, 10000));
  start(&late, p, 100);
  pthread_join(late.t, NULL);
  CHECK_CODE(late.rc, SQLITE_BUSY);
  CHECK_HAS(late.msg, "came free within 100 ms");
  dbpool_stats st = pu_stats(p);
  CHECK(st.waiting == 1 && st.timeouts == 1);
  CHECK(!atomic_load(&early.done));
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  pthread_join(early.t, NULL);
  CHECK_CODE(early.rc, SQLITE_OK);
  CHECK_SQ(dbpool_release(p, early.db), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

typedef struct closer {
  dbpool *p;
  int rc;
  pthread_t t;
  atomic_int done;
} closer;

static void *do_close(void *arg)
{
  closer *c = arg;
  c->rc = dbpool_close(c->p);
  atomic_store(&c->done, 1);
  return NULL;
}

TEST(close_with_waiters)
{
  const char *path = tu_db("closewait.db");
  dbpool_config cfg = pu_config(1);
  cfg.close_timeout_ms = 20000;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  taker w1, w2;
  start(&w1, p, 20000);
  start(&w2, p, 20000);
  CHECK(pu_wait(pu_stats(p).waiting == 2, 10000));
  closer c = {.p = p};
  REQUIRE(pthread_create(&c.t, NULL, do_close, &c) == 0);
  pthread_join(w1.t, NULL);
  pthread_join(w2.t, NULL);
  CHECK_CODE(w1.rc, SQLITE_MISUSE);
  CHECK_CODE(w2.rc, SQLITE_MISUSE);
  CHECK_HAS(w1.msg, "is closing");
  CHECK_HAS(w2.msg, "is closing");
  CHECK(!atomic_load(&c.done)); /* still waiting for a */
  CHECK_CMP(pu_host(path).active, ==, 1);
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  pthread_join(c.t, NULL);
  CHECK_CODE(c.rc, SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

TEST(close_times_out_and_says_how_many)
{
  const char *path = tu_db("closeto.db");
  dbpool_config cfg = pu_config(2);
  cfg.close_timeout_ms = 30;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a, *b;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_BUSY);
  CHECK_HAS(dbpool_errmsg(p), "close: 2 connections of ");
  CHECK_HAS(dbpool_errmsg(p), "still checked out after 30 ms");
  sqlite3 *x;
  CHECK_SQ(dbpool_acquire(p, &x), SQLITE_MISUSE); /* closing: no new checkouts */
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_BUSY);
  CHECK_HAS(dbpool_errmsg(p), "close: 1 connection of ");
  CHECK_CMP(pu_host(path).active, ==, 1);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

TEST(close_while_a_connection_opens)
{
  const char *path = tu_db("closeopen.db");
  sqlite3 *blocker = pu_own(path);
  REQUIRE(pu_exec(blocker, "CREATE TABLE t(x); BEGIN EXCLUSIVE; INSERT INTO t VALUES(1)") ==
          SQLITE_OK);
  dbpool_config cfg = pu_config(1); /* a try meanwhile fails at once */
  cfg.close_timeout_ms = 20000;
  cfg.init_sql = "PRAGMA busy_timeout = 20000; BEGIN IMMEDIATE; COMMIT";
  dbpool *p = pu_open(path, &cfg);
  taker opener;
  start(&opener, p, 20000);
  /* Its entry is reserved (counted in total) and its init_sql waits. */
  CHECK(pu_wait(pu_stats(p).total == 1 && pu_host(path).active == 1, 10000));
  closer c = {.p = p};
  REQUIRE(pthread_create(&c.t, NULL, do_close, &c) == 0);
  /* The close has begun once new acquires are refused. */
  sqlite3 *x = NULL;
  int closing = pu_wait(dbpool_acquire_timeout(p, &x, 0) == SQLITE_MISUSE, 10000);
  CHECK(closing);
  CHECK(!atomic_load(&opener.done) && !atomic_load(&c.done));
  CHECK_SQ(pu_exec(blocker, "COMMIT"), SQLITE_OK); /* the opener's init_sql goes on */
  pthread_join(opener.t, NULL);
  CHECK_CODE(opener.rc, SQLITE_MISUSE);
  CHECK_HAS(opener.msg, "is closing");
  CHECK(opener.db == NULL);
  pthread_join(c.t, NULL);
  CHECK_CODE(c.rc, SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
  sqlite3_close(blocker);
}

int main(void)
{
  tu_init("pool-waiting");
  alarm(120);
  RUN(no_deadline_opens_then_waits);
  RUN(a_later_waiter_times_out_first);
  RUN(close_with_waiters);
  RUN(close_times_out_and_says_how_many);
  RUN(close_while_a_connection_opens);
  return tu_finish();
}
