/*
** cancel.c -- dbpool_holder_cancel, the function that replaced asking
** callers to store into a flag with __atomic builtins: a waiting acquire
** gives up at once with -ECANCELED; a cancel that comes first ends the next
** acquire that would wait; each cancel ends one acquire, and an acquire
** that gets a slot uses it up; a forked child may not cancel its parent's
** holder.
*/
#include <pthread.h>

#include "testutil.h"

typedef struct pool1 {
  dbpool_coord *c;
  dbpool_holder *owner, *h; /* owner holds the only slot */
} pool1;

static void full_pool(pool1 *p, const char *name)
{
  REQUIRE(dbpool_coord_open(tu_db(name), 0, &p->c) == 0);
  REQUIRE(dbpool_coord_set(p->c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
  REQUIRE(dbpool_holder_new(p->c, &p->owner) == 0 && dbpool_holder_new(p->c, &p->h) == 0);
  REQUIRE(dbpool_holder_acquire(p->owner, 0) == 0);
}

static void pool_done(pool1 *p)
{
  dbpool_holder_free(p->h);
  dbpool_holder_free(p->owner);
  dbpool_coord_close(p->c);
}

typedef struct waiter {
  dbpool_holder *h;
  int rc;
  double ms;
} waiter;

static void *wait_long(void *arg)
{
  waiter *w = arg;
  double t0 = tu_now_ms();
  w->rc = dbpool_holder_acquire(w->h, 60000);
  w->ms = tu_now_ms() - t0;
  return NULL;
}

TEST(cancel_ends_a_waiting_acquire)
{
  pool1 p;
  full_pool(&p, "waiting.db");
  waiter w = {.h = p.h, .rc = 1};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, wait_long, &w) == 0);
  while (dbp_coord_waiting(p.c) == 0) tu_sleep_ms(1); /* queued */
  CHECK_RC(dbpool_holder_cancel(p.h), 0);
  pthread_join(t, NULL);
  CHECK_RC(w.rc, -ECANCELED);
  CHECK(w.ms < 30000); /* not the 60 s timeout */
  CHECK_RC(dbp_coord_waiting(p.c), 0); /* it left the queue */
  CHECK(!dbpool_holder_held(p.h));
  /* Used up: the next acquire waits (and times out) as usual. */
  CHECK_RC(dbpool_holder_acquire(p.h, 50), -ETIMEDOUT);
  pool_done(&p);
}

TEST(cancel_before_acquire_ends_the_next_wait)
{
  pool1 p;
  full_pool(&p, "before.db");
  CHECK_RC(dbpool_holder_cancel(p.h), 0);
  double t0 = tu_now_ms();
  CHECK_RC(dbpool_holder_acquire(p.h, 60000), -ECANCELED);
  CHECK(tu_now_ms() - t0 < 30000);
  CHECK(strstr(dbpool_last_error(), "was cancelled") != NULL);
  CHECK_RC(dbpool_holder_acquire(p.h, 0), -EAGAIN); /* one cancel, one acquire */
  pool_done(&p);
}

TEST(an_acquire_that_gets_a_slot_uses_the_cancel_up)
{
  pool1 p;
  full_pool(&p, "granted.db");
  CHECK_RC(dbpool_holder_release(p.owner), 0);
  CHECK_RC(dbpool_holder_cancel(p.h), 0);
  CHECK_RC(dbpool_holder_acquire(p.h, 0), 0); /* a free slot is kept */
  CHECK_RC(dbpool_holder_release(p.h), 0);
  CHECK_RC(dbpool_holder_acquire(p.owner, 0), 0);
  CHECK_RC(dbpool_holder_acquire(p.h, 50), -ETIMEDOUT); /* not -ECANCELED */
  pool_done(&p);
}

TEST(cancel_checks_its_holder)
{
  CHECK_RC(dbpool_holder_cancel(NULL), -EINVAL);
  pool1 p;
  full_pool(&p, "fork.db");
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(dbpool_holder_cancel(p.h) == -EPERM ? 0 : 1);
  CHECK_RC(tu_wait_child(child, 60000), 0);
  CHECK_RC(dbpool_holder_acquire(p.h, 50), -ETIMEDOUT); /* the child changed nothing */
  pool_done(&p);
}

int main(void)
{
  tu_init("cancel");
  RUN(cancel_ends_a_waiting_acquire);
  RUN(cancel_before_acquire_ends_the_next_wait);
  RUN(an_acquire_that_gets_a_slot_uses_the_cancel_up);
  RUN(cancel_checks_its_holder);
  return tu_finish();
}
