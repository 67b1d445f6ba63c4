/*
** lock_failures.c -- what the coordinator does when the pool's lock
** (the robust process-shared mutex in the segment, lock.c) cannot be had:
**
** - held by another process for longer than a bounded wait allows: a
**   try-once acquire gives up after 100 ms with -EAGAIN, an acquire with a
**   timeout at its deadline with -ETIMEDOUT, both counted as timeouts;
**   marking a pool removed gives up after a second and leaves it as it was;
** - left unrecoverable (a process saw its owner dead and unlocked it without
**   repairing): reaping, a slow acquire and a slow release fail with
**   -ENOTRECOVERABLE and the message that says how to get rid of the pool;
** - garbage in the mutex (a kind glibc does not know): -EBADMSG, "corrupt".
*/
#include <pthread.h>

#include "testutil.h"
#include "coordinator/internal.h"

/* A child that takes c's lock and keeps it until told (write a byte to
** *release), then unlocks and exits 0. */
typedef struct locker {
  pid_t pid;
  int release;
} locker;

static locker lock_elsewhere(dbpool_coord *c)
{
  int held[2], rel[2];
  REQUIRE(pipe(held) == 0 && pipe(rel) == 0);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(held[0]);
    close(rel[1]);
    int rc = pthread_mutex_lock(&c->hdr->lock);
    char b = rc == 0 ? 'l' : 'x';
    if (write(held[1], &b, 1) != 1) _exit(3);
    if (read(rel[0], &b, 1) != 1) _exit(4);
    pthread_mutex_unlock(&c->hdr->lock);
    _exit(rc == 0 ? 0 : 5);
  }
  close(held[1]);
  close(rel[0]);
  char b = 0;
  REQUIRE(read(held[0], &b, 1) == 1 && b == 'l');
  close(held[0]);
  return (locker){pid, rel[1]};
}

static void let_go(locker *l)
{
  char b = 'r';
  CHECK(write(l->release, &b, 1) == 1);
  close(l->release);
  CHECK(tu_wait_child(l->pid, 10000) == 0);
}

static uint64_t timeouts(dbpool_coord *c)
{
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0); /* takes no lock: nobody is dead */
  return st.total_timeouts;
}

TEST(bounded_waits_give_up_while_another_process_holds_the_lock)
{
  tu_pool p = tu_pool_open("held.db", 1, 2, 1);
  locker l = lock_elsewhere(p.c);
  /* Full: the acquire needs the lock, which it cannot get. */
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), -EAGAIN);
  CHECK(strstr(dbpool_last_error(), "pool full: all 1 connections") != NULL);
  CHECK(timeouts(p.c) == 1);
  CHECK_RC(dbpool_holder_acquire(p.h[1], 150), -ETIMEDOUT);
  CHECK(timeouts(p.c) == 2);
  CHECK(!dbpool_holder_held(p.h[1]));
  /* Marking the pool removed waits a second for the lock, then gives up. */
  dbp_mark_removed(p.c);
  CHECK(dbp_coord_removed(p.c) == 0);
  let_go(&l);
  /* Nothing was left half done: the slot is still A's, then B's. */
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), -EAGAIN);
  CHECK_RC(dbpool_holder_release(p.h[0]), 0);
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), 0);
  tu_pool_close(&p);
}

/* A process that got EOWNERDEAD and unlocked without making the lock
** consistent leaves it unrecoverable. */
static void make_unrecoverable(dbpool_coord *c)
{
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    pthread_mutex_lock(&c->hdr->lock);
    _exit(0); /* dies holding it */
  }
  REQUIRE(tu_wait_child(pid, 10000) == 0);
  pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = pthread_mutex_lock(&c->hdr->lock);
    pthread_mutex_unlock(&c->hdr->lock);
    _exit(rc == EOWNERDEAD ? 0 : 1);
  }
  REQUIRE(tu_wait_child(pid, 10000) == 0);
}

TEST(an_unrecoverable_lock_fails_reaping_and_slow_paths)
{
  tu_pool p = tu_pool_open("unrecoverable.db", 1, 2, 1);
  /* A process that registered (a holder) and died: there is someone to reap. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dbpool_holder *h;
    CCHECK(dbpool_holder_new(p.c, &h) == 0);
    _exit(c_fail ? 1 : 0); /* leaves its process record behind */
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  make_unrecoverable(p.c);

  CHECK_RC(dbpool_coord_reap(p.c), -ENOTRECOVERABLE);
  /* Registered already: a new holder needs only the lock, and fails. */
  dbpool_holder *more = (dbpool_holder *)1;
  CHECK_RC(dbpool_holder_new(p.c, &more), -ENOTRECOVERABLE);
  CHECK(more == NULL);
  CHECK(strstr(dbpool_last_error(), "is unrecoverable; remove the pool (dbpoolctl rm --force)") != NULL);
  /* The pool is full: acquiring takes the lock. */
  CHECK_RC(dbpool_holder_acquire(p.h[1], 100), -ENOTRECOVERABLE);
  CHECK(!dbpool_holder_held(p.h[1]));
  /* With the gate SLOW (someone waits, say), releasing takes the lock too. */
  dbp_gate_set_flags(p.c, G_SLOW, 0);
  CHECK_RC(dbpool_holder_release(p.h[0]), -ENOTRECOVERABLE);
  CHECK(dbpool_holder_held(p.h[0])); /* still ours: nothing changed */

  const char *db = p.db;
  tu_pool_close(&p);
  CHECK_RC(dbpool_coord_remove(db, NULL, 1), 0);
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_NOCREATE, &c), -ENOENT);
}

typedef struct waiter {
  dbpool_holder *h;
  int timeout;
  bool interruptible;
  pthread_t self;
  _Atomic int rc, done;
} waiter;

static void *wait_thread(void *arg)
{
  waiter *w = arg;
  int rc = w->interruptible ? dbp_holder_acquire_interruptible(w->h, w->timeout)
                            : dbpool_holder_acquire(w->h, w->timeout);
  atomic_store(&w->rc, rc);
  atomic_store(&w->done, 1);
  return NULL;
}

TEST(a_waiter_whose_deadline_passes_with_the_lock_unrecoverable_says_so)
{
  tu_pool p = tu_pool_open("leaveunrec.db", 1, 2, 1);
  waiter w = {.h = p.h[1], .timeout = 400};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, wait_thread, &w) == 0);
  for (int i = 0; i < 10000 && dbp_coord_waiting(p.c) < 1; i++) tu_sleep_ms(1);
  CHECK(dbp_coord_waiting(p.c) == 1);
  make_unrecoverable(p.c);
  pthread_join(t, NULL);
  CHECK_RC(atomic_load(&w.rc), -ENOTRECOVERABLE);
  CHECK(!dbpool_holder_held(p.h[1]));
  const char *db = p.db;
  tu_pool_close(&p);
  CHECK_RC(dbpool_coord_remove(db, NULL, 1), 0);
}

/* Atomic: the handler runs on the waiting thread, the checks on main. */
static _Atomic int caught;
static void on_sigint(int sig)
{
  (void)sig;
  atomic_fetch_add(&caught, 1);
}

/* A holder of a removed pool cannot move into a pool whose lock is
** unrecoverable: the error, and the holder stays where it was. */
TEST(rejoining_a_pool_whose_lock_is_unrecoverable_fails)
{
  tu_pool p = tu_pool_open("rejoinunrec.db", 2, 1, 1);
  dbpool_holder *was = p.h[0];
  dbp_mark_removed(p.c);
  REQUIRE(dbp_coord_removed(p.c));
  dbpool_coord *fresh;
  CHECK_RC(dbpool_coord_open(p.db, 0, &fresh), 0); /* the pool now */
  CHECK(!dbp_coord_removed(fresh));
  make_unrecoverable(fresh);
  CHECK_RC(dbp_holder_rejoin(&p.h[0], p.db), -ENOTRECOVERABLE);
  CHECK(p.h[0] == was && dbpool_holder_held(was));
  /* A rename is still followed in this process, though not recorded in
  ** the pool without its lock. */
  char before[DBPOOL_PATH_MAX], moved[600];
  dbpool_coord_database(fresh, before, sizeof before);
  snprintf(moved, sizeof moved, "%s.moved", p.db);
  REQUIRE(rename(p.db, moved) == 0);
  dbpool_coord *again;
  CHECK_RC(dbpool_coord_open(moved, 0, &again), 0);
  CHECK(again == fresh);
  char got[DBPOOL_PATH_MAX];
  dbpool_coord_database(again, got, sizeof got);
  CHECK_STR(got, before);
  CHECK(strstr(again->path, ".moved") != NULL);
  dbpool_coord_close(again);
  dbpool_coord_close(fresh);
  tu_pool_close(&p);
  CHECK_RC(dbpool_coord_remove(moved, NULL, 1), 0);
}

#ifdef __GLIBC__
/* A Ctrl-C that comes while an interruptible acquire waits for the pool's
** lock (its ending signals held pending by then) ends the wait for a slot
** at its first sleep, and the handler runs once the acquire returns. */
TEST(an_interrupt_pending_before_the_first_sleep_ends_the_wait)
{
  struct sigaction sa = {.sa_handler = on_sigint}, old;
  sigemptyset(&sa.sa_mask);
  REQUIRE(sigaction(SIGINT, &sa, &old) == 0);
  atomic_store(&caught, 0);
  tu_pool p = tu_pool_open("pendingint.db", 1, 2, 1);
  locker l = lock_elsewhere(p.c);
  waiter w = {.h = p.h[1], .timeout = 20000, .interruptible = true};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, wait_thread, &w) == 0);
  /* Asleep in the lock (a waiter in the kernel marks the lock word). */
  for (int i = 0; i < 20000 && !(__atomic_load_n(&p.c->hdr->lock.__data.__lock, __ATOMIC_ACQUIRE) &
                                 (int)0x80000000);
       i++)
    tu_sleep_ms(1);
  REQUIRE(__atomic_load_n(&p.c->hdr->lock.__data.__lock, __ATOMIC_ACQUIRE) & (int)0x80000000);
  CHECK(pthread_kill(t, SIGINT) == 0);
  CHECK(atomic_load(&caught) == 0); /* held pending */
  let_go(&l);
  pthread_join(t, NULL);
  CHECK_RC(atomic_load(&w.rc), -EINTR);
  CHECK(atomic_load(&caught) == 1);
  CHECK(!dbpool_holder_held(p.h[1]));
  CHECK(dbp_coord_waiting(p.c) == 0);
  tu_pool_close(&p);
  sigaction(SIGINT, &old, NULL);
}

TEST(a_mutex_of_unknown_kind_is_reported_corrupt)
{
  tu_pool p = tu_pool_open("kind.db", 1, 2, 1);
  int kind = p.c->hdr->lock.__data.__kind;
  p.c->hdr->lock.__data.__kind = 0x7f | 128; /* no such type; process-shared */
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), -EBADMSG);
  CHECK(strstr(dbpool_last_error(), "the lock of pool ") != NULL);
  CHECK(strstr(dbpool_last_error(), "is corrupt (Invalid argument)") != NULL);
  CHECK(!dbpool_holder_held(p.h[1]));
  p.c->hdr->lock.__data.__kind = kind;
  CHECK_RC(dbpool_holder_release(p.h[0]), 0);
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), 0);
  tu_pool_close(&p);
}
#endif

int main(void)
{
  tu_init("lockfail");
  RUN(bounded_waits_give_up_while_another_process_holds_the_lock);
  RUN(an_unrecoverable_lock_fails_reaping_and_slow_paths);
  RUN(a_waiter_whose_deadline_passes_with_the_lock_unrecoverable_says_so);
  RUN(rejoining_a_pool_whose_lock_is_unrecoverable_fails);
#ifdef __GLIBC__
  RUN(an_interrupt_pending_before_the_first_sleep_ends_the_wait);
  RUN(a_mutex_of_unknown_kind_is_reported_corrupt);
#endif
  return tu_finish();
}
