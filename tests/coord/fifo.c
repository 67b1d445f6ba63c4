/*
** fifo.c -- waiters are served in arrival order, across processes and
** threads (dbpool_holder_acquire: "Waiters are served in arrival order across
** all processes and threads; an arrival never overtakes a waiter").
**
** Method: with max_connections = 1 and the slot held by the test, waiters are
** started one at a time, each only once the previous one is visibly queued
** (dbp_coord_waiting() went up and dbpool_coord_holders() lists it as
** WAITING), so the arrival order is known. Then the slot is released; every
** waiter, once served, takes a ticket from an atomic counter in test-owned
** shared memory, holds briefly and releases. With a limit of 1 the next
** waiter can only be served after the previous one released, so the ticket
** order is exactly the service order, and it must equal the arrival order.
**
** "Never overtakes" is also checked for try-once arrivals (timeout 0): while
** waiters are queued a try-once must fail with -EAGAIN, even in the moments
** when a slot is free but not yet handed to the queue's head (the pool is
** resumed after a pause, or a dead holder's slot is reclaimed); it may only
** succeed after every queued waiter was served.
*/
#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"

#define NW 8          /* waiters per test */
#define MAXW 32
#define HOLD_MS 3     /* how long a served waiter holds the slot */
#define SPINNER_ID 100
#define WAIT_MS ((int)tu_ms(20000)) /* a wait that must be served */

typedef struct {
  _Atomic int next;        /* service tickets taken */
  int order[MAXW];         /* order[k]: id of the waiter served k-th */
  int rc[MAXW];            /* each waiter's acquire result (1: not yet) */
  _Atomic int done[MAXW];  /* waiter finished its acquire */
  _Atomic int ready[MAXW]; /* child attached and about to acquire */
  /* The try-once spinner. */
  _Atomic int spin_attempts;
  _Atomic int spin_stop;
  int spin_bad_rc;         /* first result other than 0 / -EAGAIN */
  _Atomic int spin_bad;    /* how many such results */
  _Atomic int spin_etimedout;
} shared_t;

static shared_t *S;

static void reset_shared(void)
{
  memset(S, 0, sizeof *S);
  for (int i = 0; i < MAXW; i++) S->rc[i] = 1;
}

/* Take a service ticket, hold, release. Returns 0 or a nonzero problem. */
static int served(dbpool_holder *h, int id)
{
  int k = atomic_fetch_add(&S->next, 1);
  if (k >= 0 && k < MAXW) S->order[k] = id;
  tu_sleep_ms(HOLD_MS);
  return dbpool_holder_release(h) != 0;
}

/* A waiter process: attach as itself, acquire, report. */
static pid_t spawn_waiter(const char *db, int id, int timeout_ms)
{
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    alarm(tu_sec(30));
    dbpool_coord *c;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &c) != 0 || dbpool_holder_new(c, &h) != 0) {
      fprintf(stderr, "waiter %d: %s\n", id, dbpool_last_error());
      _exit(3);
    }
    atomic_store(&S->ready[id], 1);
    int rc = dbpool_holder_acquire(h, timeout_ms);
    S->rc[id] = rc;
    atomic_store(&S->done[id], 1);
    int bad = rc == 0 ? served(h, id) : 0;
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    _exit(bad ? 4 : 0);
  }
  return pid;
}

typedef struct {
  dbpool_holder *h;
  int id;
  int timeout_ms;
  int bad;
} waiter_arg;

static void *waiter_thread(void *p)
{
  waiter_arg *w = p;
  atomic_store(&S->ready[w->id], 1);
  int rc = dbpool_holder_acquire(w->h, w->timeout_ms);
  S->rc[w->id] = rc;
  atomic_store(&S->done[w->id], 1);
  if (rc == 0) w->bad = served(w->h, w->id);
  return NULL;
}

/* Wait until n waiters are queued; returns the number seen. */
static unsigned wait_waiting(dbpool_coord *c, unsigned n)
{
  double end = tu_now_ms() + tu_ms(10000);
  while (dbp_coord_waiting(c) < n && tu_now_ms() < end) tu_sleep_ms(0.2);
  return dbp_coord_waiting(c);
}

/* Wait until a holder matching (pid, slot) -- either may be -1 for "any" --
** is listed as WAITING. Returns 1 if it is. */
static int wait_listed_waiting(dbpool_coord *c, int pid, int slot)
{
  dbpool_holder_info info[MAXW + 4];
  double end = tu_now_ms() + tu_ms(10000);
  do {
    int n = dbpool_coord_holders(c, info, MAXW + 4, sizeof *info);
    for (int i = 0; i < n && i < MAXW + 4; i++)
      if (info[i].state == DBPOOL_HOLDER_WAITING &&
          (pid < 0 || info[i].pid == pid) && (slot < 0 || (int)info[i].record == slot))
        return 1;
    tu_sleep_ms(0.2);
  } while (tu_now_ms() < end);
  return 0;
}

/* The waiters listed by dbpool_coord_holders, in the listed (queue) order:
** fills pids/slots, returns how many. */
static int listed_waiters(dbpool_coord *c, int *pids, int *slots, int cap)
{
  dbpool_holder_info info[MAXW + 4];
  int n = dbpool_coord_holders(c, info, MAXW + 4, sizeof *info), k = 0;
  for (int i = 0; i < n && i < MAXW + 4; i++)
    if (info[i].state == DBPOOL_HOLDER_WAITING && k < cap) {
      pids[k] = info[i].pid;
      slots[k] = (int)info[i].record;
      k++;
    }
  return k;
}

static void check_order(int n, const int *want)
{
  CHECK_RC(atomic_load(&S->next), n);
  for (int k = 0; k < n; k++) {
    CHECK_RC(S->order[k], want[k]);
    if (S->order[k] != want[k]) break; /* one report is enough */
  }
}

static dbpool_coord *open_limit1(const char *db, dbpool_holder **first)
{
  dbpool_coord *c = NULL;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
  REQUIRE(dbpool_holder_new(c, first) == 0);
  REQUIRE(dbpool_holder_acquire(*first, 0) == 0);
  return c;
}

/* ------------------------------------------------------------------ tests */

TEST(processes_are_served_in_arrival_order)
{
  for (int round = 0; round < 3; round++) {
    char name[64];
    snprintf(name, sizeof name, "proc-%d.db", round);
    const char *db = tu_db(name);
    reset_shared();
    dbpool_holder *p;
    dbpool_coord *c = open_limit1(db, &p);
    pid_t pids[NW];
    for (int i = 0; i < NW; i++) {
      pids[i] = spawn_waiter(db, i, WAIT_MS);
      CHECK_RC(wait_waiting(c, (unsigned)i + 1), i + 1);
      CHECK(wait_listed_waiting(c, pids[i], -1));
    }
    /* The listing shows the queue in arrival order too. */
    int lp[MAXW], ls[MAXW];
    CHECK_RC(listed_waiters(c, lp, ls, MAXW), NW);
    for (int i = 0; i < NW; i++) CHECK_RC(lp[i], pids[i]);
    CHECK_RC(dbpool_holder_release(p), 0);
    for (int i = 0; i < NW; i++) CHECK_RC(tu_wait_child(pids[i], 20000), 0);
    int want[NW];
    for (int i = 0; i < NW; i++) {
      want[i] = i;
      CHECK_RC(S->rc[i], 0);
    }
    check_order(NW, want);
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    CHECK_RC(dbpool_coord_stats(c, &st), 0);
    CHECK(st.active == 0 && st.waiting == 0 && st.peak_active == 1);
    CHECK(st.total_acquired == NW + 1);
    dbpool_holder_free(p);
    dbpool_coord_close(c);
  }
}

TEST(threads_are_served_in_arrival_order)
{
  for (int round = 0; round < 3; round++) {
    char name[64];
    snprintf(name, sizeof name, "thr-%d.db", round);
    const char *db = tu_db(name);
    reset_shared();
    dbpool_holder *p, *h[NW];
    dbpool_coord *c = open_limit1(db, &p);
    pthread_t t[NW];
    waiter_arg wa[NW];
    for (int i = 0; i < NW; i++) REQUIRE(dbpool_holder_new(c, &h[i]) == 0);
    for (int i = 0; i < NW; i++) {
      wa[i] = (waiter_arg){h[i], i, WAIT_MS, 0};
      REQUIRE(pthread_create(&t[i], NULL, waiter_thread, &wa[i]) == 0);
      CHECK_RC(wait_waiting(c, (unsigned)i + 1), i + 1);
      CHECK(wait_listed_waiting(c, getpid(), (int)dbp_holder_record(h[i])));
    }
    int lp[MAXW], ls[MAXW];
    CHECK_RC(listed_waiters(c, lp, ls, MAXW), NW);
    for (int i = 0; i < NW; i++) CHECK_RC(ls[i], dbp_holder_record(h[i]));
    CHECK_RC(dbpool_holder_release(p), 0);
    int want[NW];
    for (int i = 0; i < NW; i++) {
      pthread_join(t[i], NULL);
      CHECK_RC(S->rc[i], 0);
      CHECK_RC(wa[i].bad, 0);
      want[i] = i;
    }
    check_order(NW, want);
    for (int i = 0; i < NW; i++) dbpool_holder_free(h[i]);
    dbpool_holder_free(p);
    dbpool_coord_close(c);
  }
}

/* Processes and threads of the test process, interleaved in one queue. */
TEST(mixed_processes_and_threads_share_one_queue)
{
  const char *db = tu_db("mixed.db");
  reset_shared();
  dbpool_holder *p, *h[NW];
  dbpool_coord *c = open_limit1(db, &p);
  pthread_t t[NW];
  waiter_arg wa[NW];
  pid_t pids[NW];
  for (int i = 0; i < NW; i++) {
    h[i] = NULL;
    pids[i] = -1;
    if (i % 2) {
      REQUIRE(dbpool_holder_new(c, &h[i]) == 0);
      wa[i] = (waiter_arg){h[i], i, WAIT_MS, 0};
      REQUIRE(pthread_create(&t[i], NULL, waiter_thread, &wa[i]) == 0);
    } else {
      pids[i] = spawn_waiter(db, i, WAIT_MS);
    }
    CHECK_RC(wait_waiting(c, (unsigned)i + 1), i + 1);
  }
  CHECK_RC(dbpool_holder_release(p), 0);
  int want[NW];
  for (int i = 0; i < NW; i++) {
    if (i % 2) {
      pthread_join(t[i], NULL);
      CHECK_RC(wa[i].bad, 0);
    } else {
      CHECK_RC(tu_wait_child(pids[i], 20000), 0);
    }
    CHECK_RC(S->rc[i], 0);
    want[i] = i;
  }
  check_order(NW, want);
  for (int i = 0; i < NW; i++) dbpool_holder_free(h[i]);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

/* A process that tries once (timeout 0) as fast as it can until it gets the
** slot; every failure must be -EAGAIN. */
static pid_t spawn_spinner(const char *db)
{
  pid_t pid = fork();
  if (pid < 0) exit(2);
  if (pid == 0) {
    alarm(tu_sec(30));
    dbpool_coord *c;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &c) != 0 || dbpool_holder_new(c, &h) != 0) _exit(3);
    while (!atomic_load(&S->spin_stop)) {
      int rc = dbpool_holder_acquire(h, 0);
      atomic_fetch_add(&S->spin_attempts, 1);
      if (rc == 0) {
        int bad = served(h, SPINNER_ID);
        dbpool_holder_free(h);
        dbpool_coord_close(c);
        _exit(bad ? 4 : 0);
      }
      if (rc == -ETIMEDOUT) {
        atomic_fetch_add(&S->spin_etimedout, 1);
      } else if (rc != -EAGAIN) {
        if (atomic_fetch_add(&S->spin_bad, 1) == 0) S->spin_bad_rc = rc;
      }
    }
    _exit(5); /* told to stop without ever getting the slot */
  }
  return pid;
}

static void wait_spinning(int attempts)
{
  double end = tu_now_ms() + tu_ms(10000);
  int base = atomic_load(&S->spin_attempts);
  while (atomic_load(&S->spin_attempts) - base < attempts && tu_now_ms() < end)
    tu_sleep_ms(0.5);
  CHECK(atomic_load(&S->spin_attempts) - base >= attempts);
}

static void check_spinner_results(void)
{
  CHECK_RC(atomic_load(&S->spin_bad), 0);
  if (S->spin_bad) fprintf(stderr, "  first other result: %d (%s)\n", S->spin_bad_rc,
                           dbpool_strerror(S->spin_bad_rc));
  /* timeout 0 "tries once" and reports -EAGAIN, never -ETIMEDOUT. */
  CHECK_RC(atomic_load(&S->spin_etimedout), 0);
}

/* While the pool is paused a slot is free but waiters queue. A try-once
** arrival must neither take the free slot nor overtake the queue when the
** pool resumes (resuming frees the slot an instant before the queue's head
** is granted it). */
TEST(try_once_never_overtakes_waiters_of_a_paused_pool)
{
  for (int round = 0; round < 3; round++) {
    char name[64];
    snprintf(name, sizeof name, "paused-%d.db", round);
    const char *db = tu_db(name);
    reset_shared();
    dbpool_coord *c;
    dbpool_holder *probe;
    REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
    REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
    REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 1) == 0);
    REQUIRE(dbpool_holder_new(c, &probe) == 0);
    CHECK_RC(dbpool_holder_acquire(probe, 0), -EAGAIN); /* paused, slot free */
    pid_t pids[NW];
    for (int i = 0; i < NW; i++) {
      pids[i] = spawn_waiter(db, i, WAIT_MS);
      CHECK_RC(wait_waiting(c, (unsigned)i + 1), i + 1);
    }
    /* Waiters queued and a slot free: try-once still fails. */
    CHECK_RC(dbpool_holder_acquire(probe, 0), -EAGAIN);
    pid_t sp = spawn_spinner(db);
    wait_spinning(200);
    CHECK_RC(dbp_coord_waiting(c), NW); /* the spinner never queued */
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    CHECK_RC(dbpool_coord_stats(c, &st), 0);
    CHECK(st.active == 0);
    CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 0), 0);
    for (int i = 0; i < NW; i++) CHECK_RC(tu_wait_child(pids[i], 20000), 0);
    CHECK_RC(tu_wait_child(sp, 20000), 0);
    int want[NW + 1];
    for (int i = 0; i < NW; i++) {
      want[i] = i;
      CHECK_RC(S->rc[i], 0);
    }
    want[NW] = SPINNER_ID;
    check_order(NW + 1, want);
    check_spinner_results();
    dbpool_holder_free(probe);
    dbpool_coord_close(c);
  }
}

/* A holder process is SIGKILLed while waiters queue: its slot is reclaimed
** (released, then granted to the head) and goes to the queue, in order,
** never to a try-once arrival. */
TEST(try_once_never_overtakes_waiters_of_a_reclaimed_slot)
{
  for (int round = 0; round < 3; round++) {
    char name[64];
    snprintf(name, sizeof name, "reclaim-%d.db", round);
    const char *db = tu_db(name);
    reset_shared();
    dbpool_coord *c;
    REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
    REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
    _Atomic int *held = (_Atomic int *)&S->ready[MAXW - 1];
    pid_t holder = fork();
    if (holder == 0) {
      alarm(tu_sec(30));
      dbpool_coord *hc;
      dbpool_holder *h;
      if (dbpool_coord_open(db, 0, &hc) || dbpool_holder_new(hc, &h) ||
          dbpool_holder_acquire(h, 0))
        _exit(3);
      atomic_store(held, 1);
      for (;;) pause();
    }
    double end = tu_now_ms() + tu_ms(10000);
    while (!atomic_load(held) && tu_now_ms() < end) tu_sleep_ms(0.5);
    CHECK(atomic_load(held));
    pid_t pids[NW];
    for (int i = 0; i < NW; i++) {
      pids[i] = spawn_waiter(db, i, WAIT_MS);
      CHECK_RC(wait_waiting(c, (unsigned)i + 1), i + 1);
    }
    pid_t sp = spawn_spinner(db);
    wait_spinning(200);
    CHECK_RC(dbp_coord_waiting(c), NW);
    kill(holder, SIGKILL);
    CHECK_RC(tu_wait_child(holder, 10000), 128 + SIGKILL);
    for (int i = 0; i < NW; i++) CHECK_RC(tu_wait_child(pids[i], 20000), 0);
    CHECK_RC(tu_wait_child(sp, 20000), 0);
    int want[NW + 1];
    for (int i = 0; i < NW; i++) {
      want[i] = i;
      CHECK_RC(S->rc[i], 0);
    }
    want[NW] = SPINNER_ID;
    check_order(NW + 1, want);
    check_spinner_results();
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    CHECK_RC(dbpool_coord_stats(c, &st), 0);
    CHECK(st.total_reclaimed == 1 && st.active == 0 && st.waiting == 0);
    dbpool_coord_close(c);
  }
}

/* Releases hand the slot straight to the queue's head: a try-once issued
** right after a release, while others still queue, fails. */
TEST(try_once_after_release_does_not_overtake)
{
  const char *db = tu_db("handoff.db");
  reset_shared();
  dbpool_holder *p, *late;
  dbpool_coord *c = open_limit1(db, &p);
  REQUIRE(dbpool_holder_new(c, &late) == 0);
  pid_t pids[NW];
  for (int i = 0; i < NW; i++) {
    pids[i] = spawn_waiter(db, i, WAIT_MS);
    CHECK_RC(wait_waiting(c, (unsigned)i + 1), i + 1);
  }
  CHECK_RC(dbpool_holder_release(p), 0);
  /* Every try-once until the queue drained fails; then one succeeds. */
  int got = 0, bad = 0;
  double end = tu_now_ms() + tu_ms(20000);
  while (!got && tu_now_ms() < end) {
    int rc = dbpool_holder_acquire(late, 0);
    if (rc == 0) {
      got = 1;
      /* Everyone queued must have been served before us. */
      CHECK_RC(atomic_load(&S->next), NW);
    } else if (rc == -ETIMEDOUT) {
      atomic_fetch_add(&S->spin_etimedout, 1);
    } else if (rc != -EAGAIN) {
      bad++;
    }
  }
  CHECK(got);
  CHECK_RC(bad, 0);
  check_spinner_results();
  for (int i = 0; i < NW; i++) CHECK_RC(tu_wait_child(pids[i], 20000), 0);
  int want[NW];
  for (int i = 0; i < NW; i++) want[i] = i;
  check_order(NW, want);
  if (got) CHECK_RC(dbpool_holder_release(late), 0);
  dbpool_holder_free(late);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

/* Waiters that time out leave the queue (the head and one in the middle);
** the others are still served in arrival order. */
TEST(timed_out_waiters_leave_the_queue_in_order)
{
  const char *db = tu_db("timeout.db");
  reset_shared();
  dbpool_holder *p;
  dbpool_coord *c = open_limit1(db, &p);
  /* 0 and 3 time out; 1, 2, 4, 5 wait long. */
  const int nw = 6;
  int timeouts[6] = {700, WAIT_MS, WAIT_MS, 700, WAIT_MS, WAIT_MS};
  pid_t pids[6];
  for (int i = 0; i < nw; i++) {
    pids[i] = spawn_waiter(db, i, timeouts[i]);
    CHECK(wait_listed_waiting(c, pids[i], -1) || atomic_load(&S->done[i]));
  }
  double end = tu_now_ms() + tu_ms(15000);
  while ((!atomic_load(&S->done[0]) || !atomic_load(&S->done[3])) && tu_now_ms() < end)
    tu_sleep_ms(1);
  CHECK_RC(S->rc[0], -ETIMEDOUT);
  CHECK_RC(S->rc[3], -ETIMEDOUT);
  CHECK_RC(tu_wait_child(pids[0], 10000), 0);
  CHECK_RC(tu_wait_child(pids[3], 10000), 0);
  CHECK_RC(dbp_coord_waiting(c), 4);
  int lp[MAXW], ls[MAXW];
  CHECK_RC(listed_waiters(c, lp, ls, MAXW), 4);
  CHECK(lp[0] == pids[1] && lp[1] == pids[2] && lp[2] == pids[4] && lp[3] == pids[5]);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.total_timeouts == 2 && st.active == 1);
  CHECK_RC(dbpool_holder_release(p), 0);
  for (int i = 0; i < nw; i++)
    if (i != 0 && i != 3) CHECK_RC(tu_wait_child(pids[i], 20000), 0);
  int want[4] = {1, 2, 4, 5};
  for (int k = 0; k < 4; k++) CHECK_RC(S->rc[want[k]], 0);
  check_order(4, want);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

/* A thread whose wait timed out can queue again: it goes to the back. */
TEST(requeue_after_timeout_goes_to_the_back)
{
  const char *db = tu_db("requeue.db");
  reset_shared();
  dbpool_holder *p, *h[3];
  dbpool_coord *c = open_limit1(db, &p);
  for (int i = 0; i < 3; i++) REQUIRE(dbpool_holder_new(c, &h[i]) == 0);
  CHECK_RC(dbpool_holder_acquire(h[0], 50), -ETIMEDOUT);
  pthread_t t[3];
  waiter_arg wa[3];
  wa[1] = (waiter_arg){h[1], 1, WAIT_MS, 0};
  REQUIRE(pthread_create(&t[1], NULL, waiter_thread, &wa[1]) == 0);
  CHECK_RC(wait_waiting(c, 1), 1);
  wa[0] = (waiter_arg){h[0], 0, WAIT_MS, 0};
  REQUIRE(pthread_create(&t[0], NULL, waiter_thread, &wa[0]) == 0);
  CHECK_RC(wait_waiting(c, 2), 2);
  wa[2] = (waiter_arg){h[2], 2, WAIT_MS, 0};
  REQUIRE(pthread_create(&t[2], NULL, waiter_thread, &wa[2]) == 0);
  CHECK_RC(wait_waiting(c, 3), 3);
  CHECK_RC(dbpool_holder_release(p), 0);
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    CHECK_RC(S->rc[i], 0);
  }
  int want[3] = {1, 0, 2};
  check_order(3, want);
  for (int i = 0; i < 3; i++) dbpool_holder_free(h[i]);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("fifo");
  S = tu_shared(sizeof *S);
  RUN(processes_are_served_in_arrival_order);
  RUN(threads_are_served_in_arrival_order);
  RUN(mixed_processes_and_threads_share_one_queue);
  RUN(try_once_never_overtakes_waiters_of_a_paused_pool);
  RUN(try_once_never_overtakes_waiters_of_a_reclaimed_slot);
  RUN(try_once_after_release_does_not_overtake);
  RUN(timed_out_waiters_leave_the_queue_in_order);
  RUN(requeue_after_timeout_goes_to_the_back);
  return tu_finish();
}
