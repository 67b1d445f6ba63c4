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

/* A pool of one slot, held by h[0]; h[1] is the holder under test. */
static tu_pool full_pool(const char *name) { return tu_pool_open(name, 1, 2, 1); }

typedef struct waiter {
  dbpool_holder *h;
  int rc;
  double ms;
} waiter;

static void *wait_long(void *arg)
{
  waiter *w = arg;
  double t0 = tu_now_ms();
  w->rc = dbpool_holder_acquire(w->h, (int)tu_ms(60000));
  w->ms = tu_now_ms() - t0;
  return NULL;
}

TEST(cancel_ends_a_waiting_acquire)
{
  tu_pool p = full_pool("waiting.db");
  waiter w = {.h = p.h[1], .rc = 1};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, wait_long, &w) == 0);
  while (dbp_coord_waiting(p.c) == 0) tu_sleep_ms(1); /* queued */
  CHECK_RC(dbpool_holder_cancel(p.h[1]), 0);
  pthread_join(t, NULL);
  CHECK_RC(w.rc, -ECANCELED);
  CHECK(w.ms < tu_ms(30000)); /* not the 60 s timeout */
  CHECK_RC(dbp_coord_waiting(p.c), 0); /* it left the queue */
  CHECK(!dbpool_holder_held(p.h[1]));
  /* Used up: the next acquire waits (and times out) as usual. */
  CHECK_RC(dbpool_holder_acquire(p.h[1], 50), -ETIMEDOUT);
  tu_pool_close(&p);
}

TEST(cancel_before_acquire_ends_the_next_wait)
{
  tu_pool p = full_pool("before.db");
  CHECK_RC(dbpool_holder_cancel(p.h[1]), 0);
  double t0 = tu_now_ms();
  CHECK_RC(dbpool_holder_acquire(p.h[1], (int)tu_ms(60000)), -ECANCELED);
  CHECK(tu_now_ms() - t0 < tu_ms(30000));
  CHECK(strstr(dbpool_last_error(), "was cancelled") != NULL);
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), -EAGAIN); /* one cancel, one acquire */
  tu_pool_close(&p);
}

TEST(an_acquire_that_gets_a_slot_uses_the_cancel_up)
{
  tu_pool p = full_pool("granted.db");
  CHECK_RC(dbpool_holder_release(p.h[0]), 0);
  CHECK_RC(dbpool_holder_cancel(p.h[1]), 0);
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), 0); /* a free slot is kept */
  CHECK_RC(dbpool_holder_release(p.h[1]), 0);
  CHECK_RC(dbpool_holder_acquire(p.h[0], 0), 0);
  CHECK_RC(dbpool_holder_acquire(p.h[1], 50), -ETIMEDOUT); /* not -ECANCELED */
  tu_pool_close(&p);
}

TEST(cancel_checks_its_holder)
{
  CHECK_RC(dbpool_holder_cancel(NULL), -EINVAL);
  tu_pool p = full_pool("fork.db");
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(dbpool_holder_cancel(p.h[1]) == -EPERM ? 0 : 1);
  CHECK_RC(tu_wait_child(child, 60000), 0);
  CHECK_RC(dbpool_holder_acquire(p.h[1], 50), -ETIMEDOUT); /* the child changed nothing */
  tu_pool_close(&p);
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
