/*
** min_idle.c -- the housekeeper's min_idle opens when they cannot succeed.
**
** Checks:
**   - the host pool is full (its one slot held by another holder): the
**     housekeeper does not wait for it nor count a failure; once the slot
**     comes free, the min_idle connection opens by itself;
**   - every open fails (init_sql refers to a missing table): each failure
**     is counted in open_failures, no connection is kept, the host slot is
**     given back each time, and the pool closes cleanly.
*/
#include "poolutil.h"

TEST(a_full_host_pool_is_not_a_failure)
{
  const char *path = tu_db("hostfull.db");
  pu_set_host_cap(path, 1);
  dbpool_coord *c = NULL;
  dbpool_holder *h = NULL;
  REQUIRE(dbpool_coord_open(path, 0, &c) == 0);
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  REQUIRE(dbpool_holder_acquire(h, 0) == 0); /* the host pool's only slot */
  dbpool_config cfg = pu_config(2);
  cfg.min_idle = 1;
  cfg.leak_threshold_ms = 40; /* housekeeping every 10 ms */
  dbpool *p = pu_open(path, &cfg);
  /* Many housekeeping rounds: nothing opened, nothing failed. */
  tu_sleep_ms(100);
  dbpool_stats st = pu_stats(p);
  CHECK(st.total == 0 && st.created == 0 && st.open_failures == 0);
  CHECK_RC(dbpool_holder_release(h), 0);
  CHECK(pu_wait(pu_stats(p).idle == 1, 10000));
  st = pu_stats(p);
  CHECK(st.created == 1 && st.open_failures == 0);
  CHECK_CMP(pu_host(path).active, ==, 1);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
}

TEST(failing_opens_are_counted_and_give_the_slot_back)
{
  const char *path = tu_db("failopen.db");
  dbpool_config cfg = pu_config(2);
  cfg.min_idle = 1;
  cfg.leak_threshold_ms = 40;
  cfg.init_sql = "SELECT * FROM no_such_table";
  dbpool *p = pu_open(path, &cfg);
  CHECK(pu_wait(pu_stats(p).open_failures >= 2, 10000));
  dbpool_stats st = pu_stats(p);
  CHECK(st.created == 0 && st.idle == 0);
  CHECK_CMP(pu_host(path).active, <=, 1); /* at most one open under way */
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

int main(void)
{
  tu_init("pool-min-idle");
  alarm(120);
  RUN(a_full_host_pool_is_not_a_failure);
  RUN(failing_opens_are_counted_and_give_the_slot_back);
  return tu_finish();
}
