/*
** recovery.c -- a process dies holding the pool's lock, in the middle of a
** critical section; the next operation of another process recovers
** (coordinator/lock.c, dbp_recover), deterministically.
**
** This program links its own copy of the coordinator, built with crash
** points (internal.h, DBP_CRASH_POINT): a child process arms one by name
** and runs an ordinary operation -- a reap, a release that grants a waiter,
** a queued acquire, a holder's creation or end, a change of the limit --
** and is SIGKILLed at that point, the lock held and the shared state half
** changed. Other states no code path leaves (a gate count that disagrees
** with the records, a limit of 0, a held record owned by no process) are
** written into the segment directly by a child that holds the lock, as
** garbage from a broken process would be.
**
** After each death the parent makes the next call, which finds the lock's
** owner dead and recovers; then the invariants of the pool must hold:
**   - the cap: the gate's count of held slots equals the records held, and
**     never exceeds the limit;
**   - the queue: exactly the waiting records, linked both ways, in ticket
**     order; live waiters are served first come, first served;
**   - the counters: acquired = released + reclaimed + held, the reclaim
**     journal completed (a reclaim done before the death is counted once,
**     one not done is counted when it is done);
**   - the records: each process's count is what it owns; the free stack
**     holds only free, unowned records; everything dead is reclaimed by the
**     next reap;
**   - the lock works (consistent again).
** A lock left unrecoverable (a process that got EOWNERDEAD and unlocked
** without repairing) fails every operation with -ENOTRECOVERABLE and a
** message saying to remove the pool, and removing it with force works.
*/
#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"
#include "../../coordinator/internal.h"

/* ----------------------------------------------------------- crash points */

static const char *g_crash_at; /* set in a child: die at this point */
static unsigned g_crash_skip;  /* ... after passing it this many times */

void dbp_crash_point(const char *where)
{
  if (!g_crash_at || strcmp(where, g_crash_at) != 0) return;
  if (g_crash_skip > 0) {
    g_crash_skip--;
    return;
  }
  raise(SIGKILL);
}

/* Run fn(arg) in a child armed to die at point; true if it died there
** (killed by SIGKILL: the point was reached). */
static bool dies_at(const char *point, void (*fn)(void *), void *arg)
{
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    g_crash_at = point;
    fn(arg);
    _exit(0); /* the point was never reached */
  }
  return tu_wait_child(pid, 20000) == 128 + SIGKILL;
}

/* ------------------------------------------------------------ invariants */

static int by_ticket_idx(const void *a, const void *b)
{
  const uint64_t *x = a, *y = b;
  return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Check the pool's shared state, quiescent (no operation in flight). */
static void check_invariants(dbpool_coord *c, const char *when)
{
  dbp_header *h = c->hdr;
  uint32_t hwm = dbp_record_hwm(h), phwm = dbp_process_hwm(h);
  dbp_gate g = dbp_gate_load(h);
  unsigned held = 0, waiting = 0;
  uint32_t owned[DBP_PROCESSES] = {0};
  uint64_t (*w)[2] = calloc(hwm + 1, sizeof *w);
  REQUIRE(w != NULL);
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_record *r = &c->recs[i];
    unsigned st = REC_STATE(atomic_load(&r->word));
    uint32_t owner = atomic_load(&r->owner);
    held += st == REC_HELD;
    if (st == REC_WAITING) {
      w[waiting][0] = atomic_load(&r->ticket);
      w[waiting][1] = i;
      waiting++;
    }
    if (owner >= 1 && owner <= phwm) owned[owner - 1]++;
    if (st != REC_FREE && (owner < 1 || owner > phwm)) {
      fprintf(stderr, "[%s] record %u is %u but owned by no process (%u)\n", when, i, st,
              owner);
      CHECK(!"every held or waiting record has an owner");
    }
  }
  CHECK(g_active(g.bits) == held);
  CHECK(held <= g_max(g.bits));
  CHECK(g_max(g.bits) >= 1 && g_max(g.bits) <= DBPOOL_MAX_CONNECTIONS_LIMIT);
  CHECK(atomic_load(&h->n_waiting) == waiting);
  /* The queue: the waiting records, in ticket order, linked both ways. */
  qsort(w, waiting, sizeof *w, by_ticket_idx);
  uint32_t at = atomic_load(&h->q_head), prev = DBP_REC_NONE;
  for (unsigned k = 0; k < waiting; k++) {
    CHECK(at == (uint32_t)w[k][1]);
    if (at != (uint32_t)w[k][1] || !dbp_rec_in(h, at)) break;
    CHECK(atomic_load(&c->recs[at].q_prev) == prev);
    prev = at;
    at = atomic_load(&c->recs[at].q_next);
  }
  CHECK(at == DBP_REC_NONE || waiting == 0);
  CHECK(atomic_load(&h->q_tail) == (waiting ? (uint32_t)w[waiting - 1][1] : DBP_REC_NONE));
  CHECK(((g.bits & G_SLOW) != 0) == (waiting > 0 || (g.bits & (G_PAUSED | G_REMOVED))));
  /* Records per process, and the free stack. */
  for (uint32_t p = 0; p < phwm; p++)
    if (atomic_load(&c->procs[p].state) == PROC_LIVE)
      CHECK(atomic_load(&c->procs[p].n_records) == owned[p]);
  unsigned steps = 0;
  for (uint32_t f = atomic_load(&h->free_head); f != DBP_REC_NONE && steps <= hwm; steps++) {
    CHECK(dbp_rec_in(h, f));
    if (!dbp_rec_in(h, f)) break;
    CHECK(atomic_load(&c->recs[f].owner) == 0);
    CHECK(REC_STATE(atomic_load(&c->recs[f].word)) == REC_FREE);
    f = atomic_load(&c->recs[f].free_next);
  }
  CHECK(steps <= hwm); /* no cycle */
  /* The counters. */
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.total_acquired == st.total_released + st.total_reclaimed + st.active);
  CHECK(atomic_load(&h->reclaim_journal_seq) == 0);
  /* The lock works (and was recovered: its owner is not dead). */
  int lrc = pthread_mutex_trylock(&h->lock);
  CHECK_RC(lrc, 0);
  if (lrc == EOWNERDEAD) pthread_mutex_consistent(&h->lock); /* the next test */
  if (lrc == 0 || lrc == EOWNERDEAD) pthread_mutex_unlock(&h->lock);
  free(w);
  if (tu_failures) fprintf(stderr, "  (invariants checked %s)\n", when);
}

/* ------------------------------------------------------------ scenarios */

typedef struct world {
  const char *db;
  dbpool_coord *c; /* the parent's */
} world;

static void open_world(world *wd, const char *name, int max)
{
  wd->db = tu_db(name);
  REQUIRE(dbpool_coord_open(wd->db, 0, &wd->c) == 0);
  REQUIRE(dbpool_coord_set(wd->c, DBPOOL_SETTING_MAX_CONNECTIONS, max) == 0);
}

static void close_world(world *wd)
{
  dbpool_coord_close(wd->c);
  dbpool_coord_remove(wd->db, NULL, 1);
}

/* A child that holds n slots (labelled), then waits to be killed. */
static pid_t holder_child(const char *db, int n)
{
  int p[2];
  REQUIRE(pipe(p) == 0);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    dbpool_coord *c;
    if (dbpool_coord_open(db, 0, &c) != 0) _exit(1);
    for (int i = 0; i < n; i++) {
      dbpool_holder *h;
      if (dbpool_holder_new(c, &h) != 0 || dbpool_holder_acquire(h, (int)tu_ms(5000)) != 0) _exit(1);
    }
    if (write(p[1], "h", 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(p[1]);
  char b;
  REQUIRE(read(p[0], &b, 1) == 1);
  close(p[0]);
  return pid;
}

/* A child that queues for a slot (tu_ms(timeout_ms)) and reports, through its exit
** status and the shared word, when it got it: order[k] = its number. */
typedef struct order_log {
  _Atomic int n;
  int who[16];
} order_log;

static pid_t waiter_child(const char *db, int who, int timeout_ms, order_log *log)
{
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dbpool_coord *c;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &c) != 0 || dbpool_holder_new(c, &h) != 0) _exit(1);
    int rc = dbpool_holder_acquire(h, (int)tu_ms(timeout_ms));
    if (rc == 0 && log) log->who[atomic_fetch_add(&log->n, 1)] = who;
    if (rc == 0) tu_sleep_ms(20); /* hold a moment: the next must wait its turn */
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    _exit(rc == 0 ? 0 : rc == -ETIMEDOUT ? 3 : 4);
  }
  return pid;
}

static void wait_for_waiters(dbpool_coord *c, unsigned n)
{
  double end = tu_now_ms() + tu_ms(10000);
  while (dbp_coord_waiting(c) < n && tu_now_ms() < end) tu_sleep_ms(1);
  REQUIRE(dbp_coord_waiting(c) >= n);
}

static void kill_child(pid_t pid)
{
  kill(pid, SIGKILL);
  tu_wait_child(pid, 10000);
}

/* --- a reaper dies in the middle of reclaiming a dead holder's slot */

static void reap_fn(void *arg)
{
  dbpool_coord *c;
  if (dbpool_coord_open(arg, 0, &c) == 0) dbpool_coord_reap(c);
}

static void reaper_dies(const char *point, uint64_t reclaimed_right_after)
{
  world wd;
  open_world(&wd, "reap.db", 3);
  pid_t dead = holder_child(wd.db, 1);
  kill_child(dead);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK(dies_at(point, reap_fn, (void *)wd.db));
  /* The next operation recovers: it completes a reclaim that was done, and
  ** leaves one that was not to the next reap, which counts it once. */
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  CHECK(atomic_load(&wd.c->hdr->total_reclaimed) == reclaimed_right_after);
  check_invariants(wd.c, point);
  CHECK(dbpool_coord_reap(wd.c) >= 0);
  CHECK_RC(dbpool_coord_stats(wd.c, &st), 0);
  CHECK(st.total_reclaimed == 1 && st.active == 1 && st.total_acquired == 2);
  check_invariants(wd.c, point);
  dbpool_holder_free(h);
  close_world(&wd);
}

TEST(reaper_dies_after_writing_its_journal)
{
  reaper_dies("reclaim-journaled", 0); /* nothing done yet: counted by the next reap */
}

TEST(reaper_dies_after_moving_the_gate)
{
  reaper_dies("reclaim-gate-moved", 1); /* the journal completes the count */
}

TEST(reaper_dies_before_counting)
{
  reaper_dies("reclaim-uncounted", 1);
}

TEST(reaper_dies_between_two_records)
{
  world wd;
  open_world(&wd, "reap2.db", 3);
  pid_t dead = holder_child(wd.db, 2);
  kill_child(dead);
  CHECK(dies_at("reap-record-freed", reap_fn, (void *)wd.db));
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(wd.c, &st), 0); /* recovers, then reaps the rest */
  check_invariants(wd.c, "reap-record-freed");
  CHECK(st.total_reclaimed == 2 && st.active == 0);
  close_world(&wd);
}

/* --- a releaser dies after granting its slot to the head waiter in the gate */

typedef struct release_arg {
  const char *db;
} release_arg;

static void hold_then_release_fn(void *arg)
{
  release_arg *ra = arg;
  dbpool_coord *c;
  dbpool_holder *h;
  if (dbpool_coord_open(ra->db, 0, &c) != 0 || dbpool_holder_new(c, &h) != 0) return;
  g_crash_skip = 0;
  const char *point = g_crash_at;
  g_crash_at = NULL; /* not while taking it */
  if (dbpool_holder_acquire(h, (int)tu_ms(5000)) != 0) return;
  /* Wait for the waiter (the parent's child) to queue, then release. */
  double end = tu_now_ms() + tu_ms(10000);
  while (dbp_coord_waiting(c) == 0 && tu_now_ms() < end) tu_sleep_ms(1);
  g_crash_at = point;
  dbpool_holder_release(h);
}

static void releaser_dies(const char *point)
{
  world wd;
  open_world(&wd, "grant.db", 1);
  order_log *log = tu_shared(sizeof *log);
  release_arg ra = {wd.db};
  fflush(NULL);
  pid_t rel = fork();
  REQUIRE(rel >= 0);
  if (rel == 0) {
    g_crash_at = point;
    hold_then_release_fn(&ra);
    _exit(0);
  }
  /* The releaser holds the only slot; then one waiter queues. */
  double end = tu_now_ms() + tu_ms(10000);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  do {
    tu_sleep_ms(1);
    REQUIRE(dbpool_coord_stats(wd.c, &st) == 0);
  } while (st.active == 0 && tu_now_ms() < end);
  pid_t w = waiter_child(wd.db, 1, 10000, log);
  CHECK(tu_wait_child(rel, 20000) == 128 + SIGKILL);
  /* The waiter is granted, by the recovery or by the gate's op helped. */
  CHECK(tu_wait_child(w, 20000) == 0);
  CHECK(atomic_load(&log->n) == 1);
  CHECK_RC(dbpool_coord_stats(wd.c, &st), 0);
  check_invariants(wd.c, point);
  CHECK(st.active == 0);
  munmap(log, sizeof *log);
  close_world(&wd);
}

TEST(releaser_dies_after_granting_in_the_gate)
{
  releaser_dies("grant-gate-moved");
}

TEST(releaser_dies_after_releasing_in_the_gate)
{
  releaser_dies("release-gate-moved");
}

/* --- a waiter dies in the middle of queueing; the others keep their order */

static void queue_fn(void *arg)
{
  dbpool_coord *c;
  dbpool_holder *h;
  if (dbpool_coord_open(arg, 0, &c) == 0 && dbpool_holder_new(c, &h) == 0)
    dbpool_holder_acquire(h, (int)tu_ms(10000));
}

static void waiter_dies(const char *point)
{
  world wd;
  open_world(&wd, "queue.db", 1);
  order_log *log = tu_shared(sizeof *log);
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  pid_t w1 = waiter_child(wd.db, 1, 15000, log);
  wait_for_waiters(wd.c, 1);
  CHECK(dies_at(point, queue_fn, (void *)wd.db));
  /* Recovery rebuilds the queue: w1 first, then w3 (who queues now). */
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(wd.c, &st), 0);
  pid_t w3 = waiter_child(wd.db, 3, 15000, log);
  double end = tu_now_ms() + tu_ms(10000);
  do tu_sleep_ms(1);
  while (dbpool_coord_stats(wd.c, &st) == 0 && st.waiting < 2 && tu_now_ms() < end);
  CHECK(st.waiting == 2); /* the dead waiter is not counted */
  CHECK_RC(dbpool_holder_release(h), 0);
  CHECK(tu_wait_child(w1, 20000) == 0);
  CHECK(tu_wait_child(w3, 20000) == 0);
  CHECK(atomic_load(&log->n) == 2 && log->who[0] == 1 && log->who[1] == 3);
  CHECK(dbpool_coord_reap(wd.c) >= 0);
  check_invariants(wd.c, point);
  dbpool_holder_free(h);
  munmap(log, sizeof *log);
  close_world(&wd);
}

TEST(waiter_dies_half_linked_into_the_queue)
{
  waiter_dies("queue-half-linked");
}

TEST(waiter_dies_queued_before_unlocking)
{
  waiter_dies("queued");
}

/* A waiter that times out dies after leaving the queue's state but before
** unlinking itself. */
static void timeout_fn(void *arg)
{
  dbpool_coord *c;
  dbpool_holder *h;
  if (dbpool_coord_open(arg, 0, &c) == 0 && dbpool_holder_new(c, &h) == 0)
    dbpool_holder_acquire(h, 50);
}

TEST(waiter_dies_while_leaving_the_queue)
{
  world wd;
  open_world(&wd, "leave.db", 1);
  order_log *log = tu_shared(sizeof *log);
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  pid_t w1 = waiter_child(wd.db, 1, 15000, log);
  wait_for_waiters(wd.c, 1);
  CHECK(dies_at("leaving-queue", timeout_fn, (void *)wd.db));
  CHECK_RC(dbpool_holder_release(h), 0); /* recovers; w1 still first */
  CHECK(tu_wait_child(w1, 20000) == 0);
  CHECK(atomic_load(&log->n) == 1 && log->who[0] == 1);
  check_invariants(wd.c, "leaving-queue");
  dbpool_holder_free(h);
  munmap(log, sizeof *log);
  close_world(&wd);
}

/* --- a process dies in the middle of creating or freeing a holder */

static void holder_new_fn(void *arg)
{
  dbpool_coord *c;
  dbpool_holder *h;
  if (dbpool_coord_open(arg, 0, &c) == 0) dbpool_holder_new(c, &h);
}

static void holder_free_fn(void *arg)
{
  dbpool_coord *c;
  dbpool_holder *h;
  const char *point = g_crash_at;
  g_crash_at = NULL;
  if (dbpool_coord_open(arg, 0, &c) != 0 || dbpool_holder_new(c, &h) != 0) return;
  dbpool_holder *h2;
  if (dbpool_holder_new(c, &h2) != 0) return; /* stays: the process stays registered */
  g_crash_at = point;
  dbpool_holder_free(h);
}

TEST(process_dies_claiming_a_record)
{
  world wd;
  open_world(&wd, "claim.db", 2);
  CHECK(dies_at("record-claimed", holder_new_fn, (void *)wd.db));
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0); /* recovers: counts recounted */
  check_invariants(wd.c, "record-claimed");
  CHECK(dbpool_coord_reap(wd.c) >= 0);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(wd.c, &st), 0);
  CHECK(st.records_in_use == 1); /* the dead's record came back */
  check_invariants(wd.c, "record-claimed, reaped");
  dbpool_holder_free(h);
  close_world(&wd);
}

TEST(process_dies_freeing_a_record)
{
  world wd;
  open_world(&wd, "unown.db", 2);
  CHECK(dies_at("record-unowned", holder_free_fn, (void *)wd.db));
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0); /* the free stack is rebuilt */
  check_invariants(wd.c, "record-unowned");
  CHECK(dbpool_coord_reap(wd.c) >= 0);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(wd.c, &st), 0);
  CHECK(st.records_in_use == 1);
  dbpool_holder_free(h);
  close_world(&wd);
}

/* --- the limit is raised, and the raiser dies before granting the waiter */

static void raise_fn(void *arg)
{
  dbpool_coord *c;
  if (dbpool_coord_open(arg, 0, &c) == 0)
    dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 2);
}

TEST(process_dies_after_raising_the_limit)
{
  world wd;
  open_world(&wd, "raise.db", 1);
  order_log *log = tu_shared(sizeof *log);
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  pid_t w1 = waiter_child(wd.db, 1, 15000, log);
  wait_for_waiters(wd.c, 1);
  CHECK(dies_at("setting-changed", raise_fn, (void *)wd.db));
  /* The raiser held no slot (no dead process to reap): the next operation
  ** that takes the lock recovers, and grants the waiter the slot the new
  ** limit made. */
  CHECK_RC(dbpool_coord_set(wd.c, DBPOOL_SETTING_PAUSED, 0), 0);
  CHECK(tu_wait_child(w1, 20000) == 0);
  CHECK(atomic_load(&log->n) == 1);
  int64_t max;
  CHECK_RC(dbpool_coord_get(wd.c, DBPOOL_SETTING_MAX_CONNECTIONS, &max), 0);
  CHECK(max == 2);
  check_invariants(wd.c, "setting-changed");
  dbpool_holder_free(h);
  munmap(log, sizeof *log);
  close_world(&wd);
}

/* --- garbage left by a broken lock holder, written directly */

typedef void (*garble_fn)(dbpool_coord *c);

/* A child takes the robust mutex itself, garbles, and dies holding it. */
static void garble_and_die(dbpool_coord *c, garble_fn fn)
{
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (pthread_mutex_lock(&c->hdr->lock) != 0) _exit(1);
    if (fn) fn(c);
    raise(SIGKILL);
  }
  CHECK(tu_wait_child(pid, 10000) == 128 + SIGKILL);
}

static void wrong_count(dbpool_coord *c)
{
  dbp_gate g = dbp_gate_load(c->hdr);
  dbp_gate n = {.seq = g.seq, .bits = g_with(g.bits, G_ACTIVE_SHIFT, g_active(g.bits) + 2)};
  dbp_gate_cas(c->hdr, &g, n);
}

static void zero_limit(dbpool_coord *c)
{
  dbp_gate g = dbp_gate_load(c->hdr);
  dbp_gate n = {.seq = g.seq, .bits = g_with(g.bits, G_MAX_SHIFT, 0)};
  dbp_gate_cas(c->hdr, &g, n);
}

/* The parent's held record loses its owner; a second garbage record is
** held by a process index past the table. */
static void orphan_records(dbpool_coord *c)
{
  uint32_t hwm = dbp_record_hwm(c->hdr);
  for (uint32_t i = 0; i < hwm; i++)
    if (REC_STATE(atomic_load(&c->recs[i].word)) == REC_HELD) {
      atomic_store(&c->recs[i].owner, 0);
      break;
    }
}

TEST(lock_holder_dies_with_nothing_half_done)
{
  world wd;
  open_world(&wd, "idle.db", 2);
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  garble_and_die(wd.c, NULL);
  CHECK_RC(dbpool_holder_release(h), 0);
  CHECK_RC(dbpool_coord_set(wd.c, DBPOOL_SETTING_PAUSED, 1), 0); /* takes the lock */
  CHECK_RC(dbpool_coord_set(wd.c, DBPOOL_SETTING_PAUSED, 0), 0);
  check_invariants(wd.c, "nothing half done");
  dbpool_holder_free(h);
  close_world(&wd);
}

TEST(recovery_repairs_a_gate_count_that_disagrees)
{
  world wd;
  open_world(&wd, "count.db", 4);
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  garble_and_die(wd.c, wrong_count);
  CHECK_RC(dbpool_coord_set(wd.c, DBPOOL_SETTING_PAUSED, 0), 0); /* recovers */
  check_invariants(wd.c, "wrong count");
  CHECK(g_active(dbp_gate_load(wd.c->hdr).bits) == 1);
  dbpool_holder_free(h);
  close_world(&wd);
}

TEST(recovery_repairs_a_limit_out_of_range)
{
  world wd;
  open_world(&wd, "limit.db", 4);
  garble_and_die(wd.c, zero_limit);
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), 0); /* recovers: a limit of 1 */
  check_invariants(wd.c, "zero limit");
  CHECK(g_max(dbp_gate_load(wd.c->hdr).bits) == 1);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  dbpool_holder_free(h);
  close_world(&wd);
}

TEST(recovery_reclaims_records_that_no_process_owns)
{
  world wd;
  open_world(&wd, "orphan.db", 2);
  dbpool_holder *a, *b;
  CHECK_RC(dbpool_holder_new(wd.c, &a), 0);
  CHECK_RC(dbpool_holder_new(wd.c, &b), 0);
  CHECK_RC(dbpool_holder_acquire(a, 0), 0);
  garble_and_die(wd.c, orphan_records);
  /* The next to take the lock recovers: a's slot, owned by nobody now, is
  ** reclaimed. */
  CHECK_RC(dbpool_coord_set(wd.c, DBPOOL_SETTING_PAUSED, 0), 0);
  CHECK_RC(dbpool_holder_acquire(b, 0), 0);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(wd.c, &st), 0);
  CHECK(st.active == 1 && st.total_reclaimed == 1);
  check_invariants(wd.c, "orphans");
  /* a's release finds its slot taken back: an error, nothing else. */
  CHECK_RC(dbpool_holder_release(a), -EBADMSG);
  dbpool_holder_free(a);
  dbpool_holder_free(b);
  close_world(&wd);
}

/* --- a lock left unrecoverable */

TEST(unrecoverable_lock_fails_with_a_message_and_force_removes_it)
{
  world wd;
  open_world(&wd, "dead.db", 2);
  garble_and_die(wd.c, NULL);
  /* A process that saw EOWNERDEAD and did not make the lock consistent. */
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = pthread_mutex_lock(&wd.c->hdr->lock);
    pthread_mutex_unlock(&wd.c->hdr->lock);
    _exit(rc == EOWNERDEAD ? 0 : 1);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK_RC(dbpool_coord_set(wd.c, DBPOOL_SETTING_PAUSED, 1), -ENOTRECOVERABLE);
  CHECK(strstr(dbpool_last_error(), "is unrecoverable; remove the pool") != NULL);
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(wd.c, &h), -ENOTRECOVERABLE);
  char name[DBP_SEGMENT_NAME_MAX];
  snprintf(name, sizeof name, "%s", dbpool_coord_segment_name(wd.c));
  dbpool_coord_close(wd.c);
  CHECK_RC(dbpool_coord_remove(wd.db, NULL, 0), -ENOTRECOVERABLE);
  CHECK_RC(dbpool_coord_remove(wd.db, NULL, 1), 0); /* what the message says */
  char path[256];
  snprintf(path, sizeof path, "/dev/shm%s", name);
  CHECK(access(path, F_OK) != 0);
  /* A fresh pool takes its place. */
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(wd.db, 0, &c), 0);
  CHECK_RC(dbpool_holder_new(c, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("recovery");
  RUN(reaper_dies_after_writing_its_journal);
  RUN(reaper_dies_after_moving_the_gate);
  RUN(reaper_dies_before_counting);
  RUN(reaper_dies_between_two_records);
  RUN(releaser_dies_after_granting_in_the_gate);
  RUN(releaser_dies_after_releasing_in_the_gate);
  RUN(waiter_dies_half_linked_into_the_queue);
  RUN(waiter_dies_queued_before_unlocking);
  RUN(waiter_dies_while_leaving_the_queue);
  RUN(process_dies_claiming_a_record);
  RUN(process_dies_freeing_a_record);
  RUN(process_dies_after_raising_the_limit);
  RUN(lock_holder_dies_with_nothing_half_done);
  RUN(recovery_repairs_a_gate_count_that_disagrees);
  RUN(recovery_repairs_a_limit_out_of_range);
  RUN(recovery_reclaims_records_that_no_process_owns);
  RUN(unrecoverable_lock_fails_with_a_message_and_force_removes_it);
  return tu_finish();
}
