/*
** rejoin.c -- the host pool removed under an in-process pool (dbpoolctl rm
** --force), in the cases basics.c's removed_host_pool_is_rejoined does not
** reach.
**
** Checks:
**   - removed before the pool opened any connection: the first acquire
**     joins the new host pool and is counted there;
**   - two connections checked out when it is removed: both are closed when
**     released, and the two opened next are counted in one new host pool
**     (the second entry follows the first's rejoin instead of opening yet
**     another attachment);
**   - removed again and again: each time the pool moves on; once it has
**     retired as many attachments as it keeps, an acquire that would need
**     another fails with SQLITE_CANTOPEN and a message saying why, holds
**     nothing, and the pool still closes cleanly.
*/
#include "poolutil.h"

TEST(removed_before_the_first_connection)
{
  const char *path = tu_db("early.db");
  dbpool_config cfg = pu_config(2);
  dbpool *p = pu_open(path, &cfg);
  CHECK_RC(dbpool_coord_remove(path, NULL, 1), 0); /* our attachment still open */
  sqlite3 *db;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  CHECK_SQ(pu_exec(db, "CREATE TABLE IF NOT EXISTS t(x)"), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 1); /* counted in the new host pool */
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

TEST(two_connections_rejoin_one_new_host_pool)
{
  const char *path = tu_db("two.db");
  dbpool_config cfg = pu_config(3);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a, *b, *c;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &c), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, c), SQLITE_OK);
  CHECK_RC(dbpool_coord_remove(path, NULL, 1), 0);
  /* The housekeeper's pass closes the idle one and marks the others. */
  CHECK(pu_wait(pu_stats(p).closed_broken == 1, 10000));
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK); /* closed: not counted in the new pool */
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  CHECK_CMP(pu_stats(p).closed_broken, ==, 3);
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  dbpool_host_stats hs = pu_host(path);
  CHECK(hs.active == 2 && hs.processes == 1);
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

TEST(removed_more_times_than_attachments_are_kept)
{
  const char *path = tu_db("often.db");
  dbpool_config cfg = pu_config(1);
  cfg.acquire_timeout_ms = 2000;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db;
  int rc = SQLITE_OK, rounds = 0;
  for (; rounds < 20; rounds++) {
    rc = dbpool_acquire(p, &db);
    if (rc != SQLITE_OK) break;
    CHECK_CMP(pu_host(path).active, ==, 1);
    CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
    /* The removal: the idle connection is closed (by the housekeeper or
    ** the next acquire) and the next one opens in a new host pool. */
    CHECK_RC(dbpool_coord_remove(path, NULL, 1), 0);
    CHECK(pu_wait(pu_stats(p).idle == 0, 10000));
  }
  CHECK_SQ(rc, SQLITE_CANTOPEN);
  CHECK_CMP(rounds, ==, 9); /* the first host pool and 8 retired ones */
  CHECK_HAS(dbpool_errmsg(p), "often.db was removed 9 times while this pool was open; "
                                "close and reopen the pool");
  dbpool_stats st = pu_stats(p);
  CHECK(st.active == 0 && st.total == 0);
  CHECK_CMP(pu_host(path).active, ==, 0);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

int main(void)
{
  tu_init("pool-rejoin");
  alarm(120);
  RUN(removed_before_the_first_connection);
  RUN(two_connections_rejoin_one_new_host_pool);
  RUN(removed_more_times_than_attachments_are_kept);
  return tu_finish();
}
