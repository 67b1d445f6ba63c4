/*
** writer_queue.c -- the writer queue's protocol (coordinator/writer.c,
** docs/protocol.md "The writer queue") driven directly, as the extension's
** write-lock gate drives it, by several real processes: the test process
** and "agents", forked processes that hold a slot in the pool and run one
** queue call per command they read from a pipe, so that every interleaving
** here is chosen, not hoped for. Processes die by SIGKILL; hostile bytes are
** written into the queue's shared memory.
**
** Checks:
**   - turns: a free turn goes to whoever asks; a writer that finds it taken
**     holds a ticket, is listed as waiting, and takes the turn after it is
**     let go; the statistics count writes and waits;
**   - a thread asking while its own other connection has the turn is told
**     so (SELF, OWN) and never waits on itself; a connection used from
**     another thread is judged by that thread;
**   - starvation (writer_starvation_ms, and a waiter beaten twice): the turn
**     is handed to the head of the queue, never to a writer barging in; the
**     head is woken while the holder still writes;
**   - a turn reserved by a waiter is kept for it; a grant nobody claims
**     expires, and its owner asking again within a second keeps its place;
**     a turn used for nothing keeps its place briefly;
**   - SIGKILLed (or reaped) holders and waiters are skipped, waiters that
**     stopped coming back expire, and none of them is handed the turn;
**   - turning the queue off releases every waiter; a process without a slot
**     in the pool, a read-only attachment and a forked child using its
**     parent's handle do not queue;
**   - a full entry table is refilled from dead processes' entries;
**   - garbage in the turn word, entries, clocks and counters never stalls
**     writers;
**   - threads of several processes racing for the turn never hold it at
**     once (checked independently in shared memory).
*/
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "testutil.h"
#include "coordinator/writer.h"

#define STARVE DBPOOL_SETTING_WRITER_STARVATION_MS

static dbp_writerq *wq_of(dbpool_coord *c) { return &c->hdr->writerq; }

static dbpool_writer_stats wstats(dbpool_coord *c)
{
  dbpool_writer_stats ws;
  DBPOOL_INIT(&ws);
  REQUIRE(dbpool_coord_writer_stats(c, &ws) == 0);
  return ws;
}

/* The listing entry of pid (state 0 if it is not listed); the count. */
static int listed(dbpool_coord *c, pid_t pid, dbpool_writer_info *out)
{
  dbpool_writer_info w[16];
  int n = dbpool_coord_writers(c, w, 16, sizeof w[0]);
  memset(out, 0, sizeof *out);
  for (int i = 0; i < n && i < 16; i++)
    if (w[i].pid == pid) *out = w[i];
  return n;
}

static unsigned turn_kind(dbpool_coord *c) { return WQ_T_KIND(atomic_load(&wq_of(c)->turn)); }
static uint32_t turn_idx(dbpool_coord *c) { return WQ_T_IDX(atomic_load(&wq_of(c)->turn)); }

static int64_t ms_from_now(int64_t ms) { return dbp_mono_ns() + ms * 1000000; }

/* ---------------------------------------------------------------- agents */

enum { OP_ACQ = 1, OP_TAKEN, OP_DONE, OP_RELEASE, OP_WAIT, OP_REQUEUE, OP_DROP,
       OP_LOCK_BUSY, OP_FILL, OP_IDX, OP_EXIT };

typedef struct {
  int32_t op, h, flag;
  int64_t arg;
} cmd;

typedef struct {
  pid_t pid;
  int to, from;
} agent;

#define AGENT_HANDLES 4

static void agent_loop(const char *db, int in, int out)
{
  dbpool_holder *hd = tu_child_take_slot(db, NULL);
  dbpool_coord *c = hd->c;
  static dbp_wq_handle h[AGENT_HANDLES], fill[DBP_WQ_ENTRIES];
  for (int i = 0; i < AGENT_HANDLES; i++) h[i] = (dbp_wq_handle)DBP_WQ_HANDLE_INIT;
  int64_t r = 0;
  if (write(out, &r, sizeof r) != sizeof r) _exit(4); /* ready */
  cmd m;
  while (read(in, &m, sizeof m) == sizeof m) {
    dbp_wq_handle *x = &h[m.h];
    r = 0;
    switch (m.op) {
    case OP_ACQ: r = dbp_wq_acquire(c, x, m.flag != 0); break;
    case OP_TAKEN: dbp_wq_taken(c, x); break;
    case OP_DONE: dbp_wq_done(c, x, m.flag != 0); break;
    case OP_RELEASE: dbp_wq_release(c, x); break;
    case OP_WAIT: r = dbp_wq_wait(c, x, ms_from_now(m.arg), m.flag != 0); break;
    case OP_REQUEUE: dbp_wq_requeue(c, x); break;
    case OP_DROP: dbp_wq_drop(c, x); break;
    case OP_LOCK_BUSY: dbp_wq_lock_busy(c, x, ms_from_now(m.arg)); break;
    case OP_FILL: /* take m.arg entries, each used for one write */
      for (int64_t i = 0; i < m.arg; i++) {
        fill[i] = (dbp_wq_handle)DBP_WQ_HANDLE_INIT;
        if (dbp_wq_acquire(c, &fill[i], false) != DBP_WQ_GO) continue;
        dbp_wq_done(c, &fill[i], true);
        r++;
      }
      break;
    case OP_IDX: r = x->idx; break;
    case OP_EXIT: _exit(0);
    }
    if (write(out, &r, sizeof r) != sizeof r) _exit(4);
  }
  _exit(0);
}

static int64_t agent_result(agent *a)
{
  struct pollfd pf = {.fd = a->from, .events = POLLIN};
  int64_t r;
  if (poll(&pf, 1, 20000) != 1 || read(a->from, &r, sizeof r) != sizeof r) {
    fprintf(stderr, "[%s] agent %d did not answer\n", tu_current, (int)a->pid);
    return -999;
  }
  return r;
}

static agent agent_start(const char *db)
{
  int to[2], from[2];
  REQUIRE(pipe(to) == 0 && pipe(from) == 0);
  agent a = {.pid = fork()};
  REQUIRE(a.pid >= 0);
  if (a.pid == 0) {
    close(to[1]);
    close(from[0]);
    agent_loop(db, to[0], from[1]);
  }
  close(to[0]);
  close(from[1]);
  a.to = to[1];
  a.from = from[0];
  REQUIRE(agent_result(&a) == 0);
  return a;
}

static void agent_send(agent *a, int op, int h, int flag, int64_t arg)
{
  cmd m = {op, h, flag, arg};
  if (write(a->to, &m, sizeof m) != sizeof m) fprintf(stderr, "agent %d: write\n", (int)a->pid);
}

static int64_t agent_do(agent *a, int op, int h, int flag, int64_t arg)
{
  agent_send(a, op, h, flag, arg);
  return agent_result(a);
}

static void agent_stop(agent *a)
{
  agent_send(a, OP_EXIT, 0, 0, 0);
  CHECK(tu_wait_child(a->pid, 10000) == 0);
  close(a->to);
  close(a->from);
}

static void agent_kill(agent *a)
{
  kill(a->pid, SIGKILL);
  CHECK(tu_wait_child(a->pid, 10000) == 128 + SIGKILL);
  close(a->to);
  close(a->from);
}

/* Give the agent's pending wait time to reach its futex (so that what
** follows wakes it there rather than before it sleeps). Either way the
** outcome checked is the same; this only picks the likelier path. */
static void let_it_sleep(agent *a)
{
  char path[64], buf[64];
  snprintf(path, sizeof path, "/proc/%d/wchan", (int)a->pid);
  for (int i = 0; i < 2000; i++) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    buf[n > 0 ? n : 0] = 0;
    if (strstr(buf, "futex")) return;
    tu_sleep_ms(1);
  }
}

static dbp_wq_handle fresh(void) { return (dbp_wq_handle)DBP_WQ_HANDLE_INIT; }

/* ----------------------------------------------------------------- turns */

TEST(turns_go_to_the_first_to_ask_and_waiters_are_counted)
{
  tu_pool p = tu_pool_open("wq_basic.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  dbp_wq_taken(p.c, &h);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(ws.writing == 1 && ws.waiting == 1 && ws.enabled == 1 && ws.starvation_ms == 60000);
  dbpool_writer_info me, it;
  CHECK(listed(p.c, getpid(), &me) == 2);
  listed(p.c, a.pid, &it);
  CHECK(me.state == DBPOOL_WRITER_WRITING && me.waited_ns == 0);
  CHECK(it.state == DBPOOL_WRITER_WAITING && it.ticket > 0);
  CHECK_STR(dbpool_writer_state_name(me.state), "writing");
  CHECK_STR(dbpool_writer_state_name(it.state), "waiting");
  dbp_wq_done(p.c, &h, true);
  CHECK(turn_kind(p.c) == WQ_FREE); /* not handed: nobody starves */
  CHECK_RC(agent_do(&a, OP_WAIT, 0, 0, 5000), DBP_WQ_READY);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_GO);
  agent_do(&a, OP_DONE, 0, 1, 0);
  ws = wstats(p.c);
  CHECK(ws.writing == 0 && ws.waiting == 0);
  CHECK(ws.total_writes == 2 && ws.total_waits == 1 && ws.max_wait_ns > 0);
  CHECK(ws.p999_wait_ns > 0 && ws.total_wait_ns >= ws.max_wait_ns);
  CHECK(listed(p.c, a.pid, &it) == 0);
  agent_stop(&a);
  tu_pool_close(&p);
}

TEST(a_thread_never_waits_on_its_own_other_connection)
{
  tu_pool p = tu_pool_open("wq_self.db", 10, 1, 1);
  dbp_wq_handle h1 = fresh(), h2 = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h1, false), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h1, false), DBP_WQ_GO); /* asked again: still ours */
  CHECK_RC(dbp_wq_acquire(p.c, &h2, false), DBP_WQ_SELF); /* no ticket */
  CHECK(!dbp_wq_queued(p.c, &h2));
  CHECK_RC(dbp_wq_wait(p.c, &h2, ms_from_now(5000), false), DBP_WQ_GONE); /* not queued */
  dbp_wq_requeue(p.c, &h2); /* as a busy sleep after the refusal does */
  CHECK(dbp_wq_queued(p.c, &h2));
  double t0 = tu_now_ms();
  CHECK_RC(dbp_wq_wait(p.c, &h2, ms_from_now(5000), false), DBP_WQ_OWN);
  CHECK(tu_now_ms() - t0 < 4000); /* told at once, not at the deadline */
  dbp_wq_done(p.c, &h1, true);
  CHECK_RC(dbp_wq_acquire(p.c, &h2, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h2, true);
  CHECK(!dbp_wq_queued(p.c, &h2));
  CHECK(wstats(p.c).total_writes == 2);
  dbp_wq_drop(p.c, &h1);
  dbp_wq_drop(p.c, &h2);
  CHECK(h1.idx == DBP_WQ_NONE && h2.idx == DBP_WQ_NONE);
  CHECK(!dbp_wq_queued(p.c, &h2));
  dbp_wq_drop(p.c, &h2); /* twice: nothing */
  /* A handle that never queued: every call is harmless. */
  dbp_wq_taken(p.c, &h2);
  dbp_wq_lock_busy(p.c, &h2, ms_from_now(10));
  dbp_wq_release(p.c, &h2);
  dbp_wq_requeue(p.c, &h2);
  CHECK_RC(dbp_wq_wait(p.c, &h2, ms_from_now(10), false), DBP_WQ_GONE);
  CHECK(wstats(p.c).waiting == 0 && turn_kind(p.c) == WQ_FREE);
  tu_pool_close(&p);
}

typedef struct {
  dbpool_coord *c;
  dbp_wq_handle *h;
  int rc;
} thread_arg;

static void *acquire_in_thread(void *p)
{
  thread_arg *t = p;
  t->rc = dbp_wq_acquire(t->c, t->h, false);
  return NULL;
}

TEST(a_connection_used_from_another_thread_is_judged_by_that_thread)
{
  tu_pool p = tu_pool_open("wq_thread.db", 10, 1, 1);
  dbp_wq_handle h1 = fresh(), h2 = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h1, false), DBP_WQ_GO); /* made by this thread */
  dbp_wq_done(p.c, &h1, true);
  thread_arg t = {p.c, &h1, -1};
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, acquire_in_thread, &t) == 0);
  pthread_join(th, NULL);
  CHECK_RC(t.rc, DBP_WQ_GO);
  dbpool_writer_info me;
  listed(p.c, getpid(), &me);
  CHECK(me.state == DBPOOL_WRITER_WRITING && me.tid != dbp_tid());
  /* The turn is the other thread's: this thread queues. */
  CHECK_RC(dbp_wq_acquire(p.c, &h2, false), DBP_WQ_WAIT);
  dbp_wq_done(p.c, &h1, true);
  CHECK_RC(dbp_wq_wait(p.c, &h2, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK_RC(dbp_wq_acquire(p.c, &h2, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h2, true);
  tu_pool_close(&p);
}

/* ------------------------------------------------------------- starvation */

TEST(a_starving_waiter_is_woken_early_and_handed_the_turn)
{
  tu_pool p = tu_pool_open("wq_strict.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 0), 0); /* every waiter starves */
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  agent_send(&a, OP_WAIT, 0, 0, 10000);
  let_it_sleep(&a);
  dbp_wq_taken(p.c, &h); /* wakes the head now: it spins until we let go */
  dbp_wq_done(p.c, &h, true);
  CHECK_RC(agent_result(&a), DBP_WQ_READY);
  dbpool_writer_info it;
  listed(p.c, a.pid, &it);
  CHECK(it.state == DBPOOL_WRITER_GRANTED);
  CHECK_STR(dbpool_writer_state_name(it.state), "granted");
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_GO);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(ws.strict_handoffs == 1 && ws.writing == 1);
  agent_do(&a, OP_DONE, 0, 1, 0);
  CHECK(wstats(p.c).total_waits == 1);
  agent_stop(&a);
  tu_pool_close(&p);
}

TEST(a_free_turn_goes_to_the_starving_head_not_to_a_barger)
{
  tu_pool p = tu_pool_open("wq_barge.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  agent b = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  dbp_wq_done(p.c, &h, true);
  CHECK(turn_kind(p.c) == WQ_FREE); /* b does not starve yet */
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 0), 0); /* now it does */
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT); /* handed to b instead */
  dbpool_writer_info it, me;
  listed(p.c, b.pid, &it);
  listed(p.c, getpid(), &me);
  CHECK(it.state == DBPOOL_WRITER_GRANTED && me.state == DBPOOL_WRITER_WAITING);
  CHECK(wstats(p.c).strict_handoffs == 1);
  CHECK_RC(agent_do(&b, OP_WAIT, 0, 0, 5000), DBP_WQ_READY);
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 1, 0), DBP_WQ_GO);
  agent_do(&b, OP_DONE, 0, 1, 0); /* hands it on to us, the head now */
  listed(p.c, getpid(), &me);
  CHECK(me.state == DBPOOL_WRITER_GRANTED);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  /* The head itself asking for a free turn takes it. */
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, false); /* used for nothing: we keep a place */
  CHECK(turn_kind(p.c) == WQ_FREE);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  /* A turn given back after an error goes to the starving head too. */
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  agent_do(&b, OP_RELEASE, 0, 0, 0);
  listed(p.c, getpid(), &me);
  CHECK(me.state == DBPOOL_WRITER_GRANTED);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  CHECK(wstats(p.c).strict_handoffs == 3);
  agent_stop(&b);
  tu_pool_close(&p);
}

TEST(a_writer_beaten_twice_gets_the_next_turn)
{
  tu_pool p = tu_pool_open("wq_beaten.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_WAIT); /* woken, beaten once */
  dbp_wq_done(p.c, &h, true);
  CHECK(turn_kind(p.c) == WQ_FREE); /* once is not starving */
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_WAIT); /* beaten twice */
  dbp_wq_done(p.c, &h, true);
  dbpool_writer_info it;
  listed(p.c, a.pid, &it);
  CHECK(it.state == DBPOOL_WRITER_GRANTED);
  CHECK(wstats(p.c).strict_handoffs == 1);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_GO);
  agent_do(&a, OP_DONE, 0, 1, 0);
  agent_stop(&a);
  tu_pool_close(&p);
}

/* ------------------------------------------------------ grants and places */

/* A waiter sleeping ms more says it will be back by then (dbp_wq_wait
** sets this before it sleeps): the grant is not abandoned meanwhile. */
static void keep_alive(dbpool_coord *c, const dbp_wq_handle *h, int64_t ms)
{
  atomic_store(&wq_of(c)->entries[h->idx].alive_ns, ms_from_now(ms));
}

TEST(a_reserved_turn_is_kept_for_the_waiter_that_reserved_it)
{
  tu_pool p = tu_pool_open("wq_reserve.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  agent_do(&a, OP_DONE, 0, 1, 0);
  CHECK(turn_kind(p.c) == WQ_FREE);
  /* A deferred retry: reserve the free turn before reading. */
  CHECK_RC(dbp_wq_wait(p.c, &h, dbp_mono_ns(), true), DBP_WQ_READY);
  CHECK(turn_kind(p.c) == WQ_GRANTED && turn_idx(p.c) == h.idx);
  CHECK(dbp_wq_queued(p.c, &h));
  keep_alive(p.c, &h, 10000);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT); /* nobody writes first */
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), true), DBP_WQ_READY); /* ours */
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  CHECK_RC(agent_do(&a, OP_WAIT, 0, 0, 5000), DBP_WQ_READY);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_GO);
  agent_do(&a, OP_DONE, 0, 1, 0);
  CHECK(wstats(p.c).total_writes == 3 && wstats(p.c).turns_expired == 0);
  agent_stop(&a);
  tu_pool_close(&p);
}

TEST(an_unclaimed_grant_expires_and_its_owner_keeps_its_place)
{
  tu_pool p = tu_pool_open("wq_expire.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  dbpool_writer_info me;
  listed(p.c, getpid(), &me);
  uint64_t ticket = me.ticket;
  agent_do(&a, OP_DONE, 0, 1, 0);
  CHECK_RC(dbp_wq_wait(p.c, &h, dbp_mono_ns(), true), DBP_WQ_READY);
  CHECK(turn_kind(p.c) == WQ_GRANTED);
  tu_sleep_ms(60); /* past the grant's claim window and our sign of life */
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO); /* the grant expired */
  CHECK(wstats(p.c).turns_expired == 1);
  CHECK(!dbp_wq_queued(p.c, &h));
  CHECK(listed(p.c, getpid(), &me) == 1 && me.state == 0);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT); /* asks again at once */
  listed(p.c, getpid(), &me);
  CHECK(me.state == DBPOOL_WRITER_WAITING && me.ticket == ticket); /* same place */
  agent_do(&a, OP_DONE, 0, 1, 0);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  agent_stop(&a);
  tu_pool_close(&p);
}

TEST(a_turn_used_for_nothing_keeps_its_place_briefly)
{
  tu_pool p = tu_pool_open("wq_unused.db", 10, 1, 1);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  dbp_wq_taken(p.c, &h);
  dbp_wq_done(p.c, &h, false); /* stale snapshot: SQLite retries */
  CHECK(turn_kind(p.c) == WQ_FREE);
  CHECK(dbp_wq_queued(p.c, &h));
  CHECK(wstats(p.c).total_writes == 0);
  tu_sleep_ms(15); /* the place is kept 10 ms */
  CHECK(!dbp_wq_queued(p.c, &h));
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  CHECK(wstats(p.c).total_writes == 1);
  tu_pool_close(&p);
}

TEST(a_turn_kept_while_the_real_lock_is_busy_stays_ours)
{
  tu_pool p = tu_pool_open("wq_lockbusy.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  /* A writer that does not queue holds SQLite's lock: keep our turn. */
  dbp_wq_lock_busy(p.c, &h, ms_from_now(10000));
  CHECK(turn_kind(p.c) == WQ_GRANTED && turn_idx(p.c) == h.idx);
  CHECK(dbp_wq_queued(p.c, &h));
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  /* lock_busy by a writer that does not hold the turn only queues it. */
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  dbp_wq_lock_busy(p.c, &h, ms_from_now(10000));
  CHECK(turn_kind(p.c) == WQ_HELD && turn_idx(p.c) != h.idx);
  CHECK(dbp_wq_queued(p.c, &h));
  agent_do(&a, OP_DONE, 0, 1, 0);
  dbp_wq_drop(p.c, &h);
  CHECK(wstats(p.c).waiting == 0);
  agent_stop(&a);
  tu_pool_close(&p);
}

/* ------------------------------------------------------- dead and absent */

TEST(a_turn_held_by_a_killed_process_is_skipped)
{
  tu_pool p = tu_pool_open("wq_deadholder.db", 10, 1, 1);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  agent_kill(&a);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK(wstats(p.c).turns_skipped == 1);
  dbpool_writer_info it;
  CHECK(listed(p.c, a.pid, &it) == 1 && it.state == 0);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  tu_pool_close(&p);
}

TEST(a_turn_held_by_a_reaped_process_is_skipped)
{
  tu_pool p = tu_pool_open("wq_reaped.db", 10, 1, 1);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  uint32_t proc = atomic_load(&wq_of(p.c)->entries[agent_do(&a, OP_IDX, 0, 0, 0)].proc);
  agent_kill(&a);
  CHECK(dbpool_coord_reap(p.c) >= 1); /* its slot, and its process record */
  CHECK(proc >= 1 && atomic_load(&p.c->procs[proc - 1].state) != PROC_LIVE);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK(wstats(p.c).turns_skipped == 1);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  tu_pool_close(&p);
}

TEST(a_killed_waiter_loses_its_place)
{
  tu_pool p = tu_pool_open("wq_deadwaiter.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  agent a = agent_start(p.db), b = agent_start(p.db);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  pid_t dead = a.pid;
  agent_kill(&a);
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  CHECK_RC(agent_do(&b, OP_WAIT, 0, 0, 100), DBP_WQ_TIMEOUT); /* we still write */
  dbpool_writer_info it;
  CHECK(listed(p.c, dead, &it) == 2 && it.state == 0);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(ws.turns_skipped == 1 && ws.waiting == 1);
  dbp_wq_done(p.c, &h, true);
  CHECK_RC(agent_do(&b, OP_WAIT, 0, 0, 5000), DBP_WQ_READY);
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 1, 0), DBP_WQ_GO);
  agent_do(&b, OP_DONE, 0, 1, 0);
  agent_stop(&b);
  tu_pool_close(&p);
}

TEST(a_waiter_that_stopped_coming_back_expires_and_is_never_handed_the_turn)
{
  tu_pool p = tu_pool_open("wq_absent.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 20), 0);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  agent a = agent_start(p.db), b = agent_start(p.db);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT); /* and never comes back */
  tu_sleep_ms(60); /* past its sign of life; it starves too */
  dbp_wq_done(p.c, &h, true);
  CHECK(turn_kind(p.c) == WQ_FREE); /* not handed to the absent head */
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  CHECK_RC(agent_do(&b, OP_WAIT, 0, 0, 100), DBP_WQ_TIMEOUT);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(ws.turns_expired == 1 && ws.waiting == 1 && ws.turns_skipped == 0);
  dbpool_writer_info it;
  listed(p.c, a.pid, &it);
  CHECK(it.state == 0);
  dbp_wq_done(p.c, &h, true);
  agent_stop(&a);
  agent_stop(&b);
  tu_pool_close(&p);
}

TEST(strict_handoffs_are_spaced_by_a_sixteenth_of_the_threshold)
{
  tu_pool p = tu_pool_open("wq_gap.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0); /* gap: 3.75 s */
  dbp_writerq *q = wq_of(p.c);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_WAIT);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_WAIT); /* beaten twice: starving */
  atomic_store(&q->strict_ns, dbp_mono_ns()); /* a strict hand-off just now */
  dbp_wq_done(p.c, &h, true);
  CHECK(turn_kind(p.c) == WQ_FREE); /* the next one waits for the gap */
  CHECK(wstats(p.c).strict_handoffs == 0);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  atomic_store(&q->strict_ns, dbp_mono_ns() - (int64_t)4000 * 1000000); /* 4 s ago */
  dbp_wq_done(p.c, &h, true);
  CHECK(turn_kind(p.c) == WQ_GRANTED);
  CHECK(wstats(p.c).strict_handoffs == 1);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_GO);
  agent_do(&a, OP_DONE, 0, 1, 0);
  /* A dead holder's turn, skipped within the gap: free, and the starving
  ** head (us) is woken to take it. */
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_WAIT);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_WAIT);
  atomic_store(&q->strict_ns, dbp_mono_ns());
  agent_kill(&a);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(ws.turns_skipped == 1 && ws.strict_handoffs == 1);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  tu_pool_close(&p);
}

TEST(a_waiters_check_expires_a_grant_nobody_claims)
{
  tu_pool p = tu_pool_open("wq_checkexpire.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  dbp_wq_done(p.c, &h, true);
  CHECK_RC(agent_do(&a, OP_WAIT, 0, 1, 0), DBP_WQ_READY); /* a reserves the turn */
  dbp_wq_handle ah = {(uint32_t)agent_do(&a, OP_IDX, 0, 0, 0), 0, 0};
  keep_alive(p.c, &ah, 10000);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  keep_alive(p.c, &ah, 40); /* ... and then never comes for it */
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK(wstats(p.c).turns_expired == 1);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  agent_stop(&a);
  tu_pool_close(&p);
}

TEST(a_waiter_finding_the_turn_free_hands_it_to_the_starving_head)
{
  tu_pool p = tu_pool_open("wq_waithand.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT); /* a is the head */
  dbp_wq_handle ah = {(uint32_t)agent_do(&a, OP_IDX, 0, 0, 0), 0, 0};
  dbp_wq_done(p.c, &h, false); /* we queue behind a; the turn is free */
  CHECK(turn_kind(p.c) == WQ_FREE);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 0), 0);
  keep_alive(p.c, &ah, 10000);
  keep_alive(p.c, &h, 10000);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(60), false), DBP_WQ_TIMEOUT);
  CHECK(turn_kind(p.c) == WQ_GRANTED && turn_idx(p.c) == ah.idx);
  /* a never comes: once its grant is stale, our wait expires it. */
  keep_alive(p.c, &ah, 0);
  tu_sleep_ms(10);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(ws.turns_expired == 1 && ws.strict_handoffs >= 1);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  agent_stop(&a);
  tu_pool_close(&p);
}

/* From now on the kernel refuses this process's shared futex waits
** (FUTEX_WAIT_BITSET without FUTEX_PRIVATE_FLAG: dbpool's waits in a
** segment) with ENOSYS, as a kernel without them, or a sandbox, would. */
static int refuse_shared_futex_waits(void)
{
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FUTEX_WAIT_BITSET, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

TEST(a_waiter_the_kernel_will_not_put_to_sleep_gives_up_at_once)
{
  tu_pool p = tu_pool_open("wq_nofutex.db", 10, 1, 1);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  pid_t pid = fork();
  if (pid == 0) {
    dbpool_holder *hd = tu_child_take_slot(p.db, NULL);
    dbp_wq_handle w = fresh();
    CCHECK(dbp_wq_acquire(hd->c, &w, false) == DBP_WQ_WAIT);
    if (refuse_shared_futex_waits() != 0) {
      printf("   skipped: seccomp filter refused (%s)\n", strerror(errno));
      _exit(0);
    }
    double t0 = tu_now_ms();
    CCHECK(dbp_wq_wait(hd->c, &w, ms_from_now(20000), false) == DBP_WQ_TIMEOUT);
    CCHECK(tu_now_ms() - t0 < 10000); /* not at the deadline: never spins */
    CHILD_EXIT();
  }
  CHECK(tu_wait_child(pid, 30000) == 0);
  dbp_wq_done(p.c, &h, true);
  tu_pool_close(&p);
}

/* ---------------------------------------------------------- who queues */

TEST(turning_the_queue_off_releases_every_waiter)
{
  tu_pool p = tu_pool_open("wq_off.db", 10, 1, 1);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  agent a = agent_start(p.db);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  agent_send(&a, OP_WAIT, 0, 0, 20000);
  let_it_sleep(&a);
  double t0 = tu_now_ms();
  CHECK_RC(dbpool_coord_set(p.c, DBPOOL_SETTING_WRITER_QUEUE, 0), 0);
  CHECK_RC(agent_result(&a), DBP_WQ_READY); /* goes straight to SQLite now */
  CHECK(tu_now_ms() - t0 < 15000);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_OFF);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(ws.enabled == 0);
  CHECK_STR(dbpool_writer_queue_status(&ws), "off");
  CHECK_STR(dbpool_writer_queue_status(NULL), "off");
  CHECK_RC(dbpool_coord_set(p.c, DBPOOL_SETTING_WRITER_QUEUE, 1), 0);
  ws = wstats(p.c);
  CHECK_STR(dbpool_writer_queue_status(&ws), "on");
  dbp_wq_done(p.c, &h, true);
  agent_stop(&a);
  tu_pool_close(&p);
}

TEST(only_a_process_holding_a_slot_in_the_pool_queues)
{
  tu_pool p = tu_pool_open("wq_who.db", 10, 1, 1);
  dbpool_coord *plain, *ro;
  /* A process that holds no slot there (a connection to an ATTACHed
  ** database): not registered, so nobody could skip its turn if it died. */
  const char *other = tu_db("wq_who_other.db");
  CHECK_RC(dbpool_coord_open(other, 0, &plain), 0);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(plain, &h, false), DBP_WQ_OFF);
  CHECK(h.idx == DBP_WQ_NONE);
  dbpool_coord_close(plain);
  /* A read-only attachment neither queues nor writes what it saw. */
  CHECK_RC(dbpool_coord_open(p.db, DBPOOL_OPEN_READONLY, &ro), 0);
  CHECK_RC(dbp_wq_acquire(ro, &h, false), DBP_WQ_OFF);
  dbp_wq_note_journal(ro, WQ_JOURNAL_ROLLBACK);
  CHECK(wstats(p.c).journal == WQ_JOURNAL_UNKNOWN);
  dbpool_coord_close(ro);
  /* A forked child using its parent's registration. */
  pid_t pid = fork();
  if (pid == 0) {
    dbp_wq_handle hc = fresh();
    CCHECK(dbp_wq_acquire(p.c, &hc, false) == DBP_WQ_OFF);
    CHILD_EXIT();
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK(wstats(p.c).total_writes == 0);
  /* The journal mode writers saw. */
  dbp_wq_note_journal(p.c, WQ_JOURNAL_ROLLBACK);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(ws.journal == WQ_JOURNAL_ROLLBACK);
  CHECK(strstr(dbpool_writer_queue_status(&ws), "rollback-journal") != NULL);
  dbp_wq_note_journal(p.c, WQ_JOURNAL_WAL);
  dbp_wq_note_journal(p.c, WQ_JOURNAL_WAL);
  CHECK(wstats(p.c).journal == WQ_JOURNAL_WAL);
  tu_pool_close(&p);
}

TEST(a_pool_created_with_the_queue_off_does_not_queue)
{
  int64_t v[DBPOOL_SETTING_COUNT];
  for (int i = 0; i < DBPOOL_SETTING_COUNT; i++) v[i] = DBPOOL_SETTING_UNSET;
  v[DBPOOL_SETTING_WRITER_QUEUE] = 0;
  dbpool_coord *c;
  dbpool_holder *hd;
  CHECK_RC(dbpool_coord_open_with(tu_db("wq_created_off.db"), v, &c), 0);
  CHECK_RC(dbpool_holder_new(c, &hd), 0);
  CHECK_RC(dbpool_holder_acquire(hd, 0), 0);
  CHECK(wstats(c).enabled == 0);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(c, &h, false), DBP_WQ_OFF);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_WRITER_QUEUE, 1), 0);
  CHECK_RC(dbp_wq_acquire(c, &h, false), DBP_WQ_GO);
  dbp_wq_done(c, &h, true);
  dbpool_holder_free(hd);
  dbpool_coord_close(c);
}

static dbp_wq_handle many[DBP_WQ_ENTRIES];

TEST(a_full_entry_table_is_refilled_from_dead_processes)
{
  tu_pool p = tu_pool_open("wq_full.db", 10, 1, 1);
  agent a = agent_start(p.db);
  CHECK_RC(agent_do(&a, OP_FILL, 0, 0, 8), 8);
  unsigned mine = DBP_WQ_ENTRIES - 8, got = 0;
  for (unsigned i = 0; i < mine; i++) {
    many[i] = fresh();
    if (dbp_wq_acquire(p.c, &many[i], false) == DBP_WQ_GO) {
      dbp_wq_done(p.c, &many[i], true);
      got++;
    }
  }
  CHECK(got == mine);
  dbp_wq_requeue(p.c, &many[0]); /* one of ours waits (not reclaimable) */
  dbp_wq_handle h = fresh();
  /* Full, everyone alive: go straight to SQLite, unqueued. */
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_OFF);
  CHECK(h.idx == DBP_WQ_NONE);
  agent_kill(&a);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO); /* a dead one's entry */
  CHECK(h.idx != DBP_WQ_NONE);
  dbp_wq_done(p.c, &h, true);
  dbp_wq_drop(p.c, &h);
  for (unsigned i = 0; i < mine; i++) dbp_wq_drop(p.c, &many[i]);
  CHECK(wstats(p.c).total_writes == DBP_WQ_ENTRIES + 1);
  tu_pool_close(&p);
}

/* --------------------------------------------------------- hostile bytes */

static uint64_t make_turn(dbpool_coord *c, unsigned kind, uint32_t idx)
{
  return WQ_T_MAKE(atomic_load(&wq_of(c)->turn), kind, idx, 0);
}

TEST(garbage_in_the_turn_word_never_stalls_writers)
{
  tu_pool p = tu_pool_open("wq_garbage_turn.db", 10, 1, 1);
  dbp_writerq *q = wq_of(p.c);
  dbp_wq_handle h = fresh();
  /* Held by an entry that does not exist: skipped by the first check. */
  atomic_store(&q->turn, make_turn(p.c, WQ_HELD, 0x1234));
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK(wstats(p.c).turns_skipped == 1);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  /* Granted to an entry that does not exist: expires at once. */
  atomic_store(&q->turn, make_turn(p.c, WQ_GRANTED, 0x1234));
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK(wstats(p.c).turns_expired == 1);
  dbp_wq_done(p.c, &h, true);
  /* Held by an entry nobody owns (free): skipped. */
  atomic_store(&q->turn, make_turn(p.c, WQ_HELD, DBP_WQ_ENTRIES - 1));
  atomic_store(&q->last_check_ns, INT64_MAX); /* a check "in the future" */
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK(wstats(p.c).turns_skipped == 2);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  tu_pool_close(&p);
}

TEST(garbage_in_entries_clocks_and_counters_never_stalls_writers)
{
  tu_pool p = tu_pool_open("wq_garbage_entries.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  dbp_writerq *q = wq_of(p.c);
  agent a = agent_start(p.db), b = agent_start(p.db);
  dbp_wq_handle h = fresh();
  /* A holder whose entry names no process record: taken for dead. */
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  uint32_t ai = (uint32_t)agent_do(&a, OP_IDX, 0, 0, 0);
  atomic_store(&q->entries[ai].proc, 0);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK(wstats(p.c).turns_skipped == 1);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  /* A waiter whose entry names another generation of its record: its
  ** record was reused by someone else, so the waiter is gone. */
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  uint32_t bi = (uint32_t)agent_do(&b, OP_IDX, 0, 0, 0);
  atomic_fetch_add(&q->entries[bi].proc_gen, 1);
  /* ... and a waiting-count that drifted. */
  atomic_store(&q->n_waiting, 7);
  atomic_store(&q->last_check_ns, 0);
  CHECK_RC(agent_do(&a, OP_ACQ, 1, 0, 0), DBP_WQ_WAIT);
  CHECK_RC(agent_do(&a, OP_WAIT, 1, 0, 60), DBP_WQ_TIMEOUT); /* it checks */
  CHECK(wstats(p.c).turns_skipped == 2);
  CHECK(atomic_load(&q->n_waiting) == 2); /* a, and us: we hold the turn we waited for */
  dbp_wq_done(p.c, &h, true);
  /* A place that "expired in the future": a new ticket, not the old. */
  CHECK_RC(agent_do(&a, OP_ACQ, 1, 1, 0), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  dbpool_writer_info me;
  listed(p.c, getpid(), &me);
  uint64_t old = me.ticket;
  dbp_wq_release(p.c, &h);
  agent_do(&a, OP_DONE, 1, 1, 0);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  CHECK_RC(agent_do(&a, OP_ACQ, 1, 0, 0), DBP_WQ_GO);
  atomic_store(&q->entries[h.idx].expired_ns, INT64_MAX);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  listed(p.c, getpid(), &me);
  CHECK(me.ticket > old);
  /* Waiting since "the future": a wait of 0. */
  atomic_store(&q->entries[h.idx].since_ns, INT64_MAX);
  agent_do(&a, OP_DONE, 1, 1, 0);
  uint64_t max0 = wstats(p.c).max_wait_ns;
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  CHECK(wstats(p.c).max_wait_ns == max0);
  /* A last strict hand-off "in the future": hand-offs still happen. */
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 0), 0);
  atomic_store(&q->strict_ns, INT64_MAX);
  CHECK_RC(agent_do(&a, OP_ACQ, 1, 0, 0), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  agent_do(&a, OP_DONE, 1, 1, 0);
  CHECK(turn_kind(p.c) == WQ_GRANTED && turn_idx(p.c) == h.idx);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  /* The starvation setting past its limit counts as the limit; a journal
  ** kind that does not exist is shown as unknown. */
  atomic_store(&q->starve_ms, UINT32_MAX);
  atomic_store(&q->journal, 77);
  CHECK(wstats(p.c).journal == WQ_JOURNAL_UNKNOWN);
  CHECK_RC(agent_do(&a, OP_ACQ, 1, 0, 0), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  agent_do(&a, OP_DONE, 1, 1, 0);
  CHECK(turn_kind(p.c) == WQ_FREE); /* nobody has waited 60 s */
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  /* A high-water mark past the table is read as the table. */
  atomic_store(&q->entry_hwm, UINT32_MAX);
  CHECK(wstats(p.c).waiting == 0);
  CHECK(dbpool_coord_writers(p.c, NULL, 0, sizeof(dbpool_writer_info)) == 0);
  /* A mark below entries in use: a new entry passes over those. */
  if (WQE_KIND(atomic_load(&q->entries[0].state)) == WQE_FREE)
    atomic_store(&q->entries[0].state, WQE_WORD(5, WQE_IDLE));
  uint32_t first_free = 0;
  while (WQE_KIND(atomic_load(&q->entries[first_free].state)) != WQE_FREE) first_free++;
  atomic_store(&q->entry_hwm, 0);
  dbp_wq_handle h2 = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h2, false), DBP_WQ_GO);
  CHECK(h2.idx == first_free);
  dbp_wq_done(p.c, &h2, true);
  agent_stop(&a);
  agent_stop(&b);
  tu_pool_close(&p);
}

TEST(garbage_that_names_us_never_confuses_a_writer)
{
  tu_pool p = tu_pool_open("wq_garbage_us.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 60000), 0);
  dbp_writerq *q = wq_of(p.c);
  agent a = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK(dbp_wq_queued(p.c, &h) == false); /* holding it is not queueing */
  dbp_wq_done(p.c, &h, true);
  /* A free turn that names our entry: free all the same. */
  atomic_store(&q->turn, make_turn(p.c, WQ_FREE, h.idx));
  dbp_wq_release(p.c, &h); /* not ours to pass on */
  CHECK(turn_kind(p.c) == WQ_FREE);
  dbp_wq_requeue(p.c, &h);
  dbpool_writer_info me;
  listed(p.c, getpid(), &me);
  CHECK(me.state == DBPOOL_WRITER_WAITING);
  CHECK_RC(dbp_wq_wait(p.c, &h, ms_from_now(5000), false), DBP_WQ_READY);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  /* The queue turned off with a high-water mark past the table. */
  atomic_store(&q->entry_hwm, UINT32_MAX);
  CHECK_RC(dbpool_coord_set(p.c, DBPOOL_SETTING_WRITER_QUEUE, 0), 0);
  CHECK_RC(dbpool_coord_set(p.c, DBPOOL_SETTING_WRITER_QUEUE, 1), 0);
  atomic_store(&q->entry_hwm, h.idx + 1);
  dbp_wq_done(p.c, &h, true);
  /* A grant to us dated "in the future": no negative hand-off time. */
  uint64_t handoff = wstats(p.c).handoff_ns;
  atomic_store(&q->turn, make_turn(p.c, WQ_GRANTED, h.idx));
  atomic_store(&q->turn_ns, INT64_MAX);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  CHECK(wstats(p.c).handoff_ns == handoff);
  /* A real lock busy twice: the turn stays granted to us. */
  dbp_wq_lock_busy(p.c, &h, ms_from_now(10000));
  dbp_wq_lock_busy(p.c, &h, ms_from_now(10000));
  CHECK(turn_kind(p.c) == WQ_GRANTED && turn_idx(p.c) == h.idx);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  /* A grant to an entry that is not waiting, long unclaimed: expires. */
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_GO);
  agent_do(&a, OP_DONE, 0, 1, 0);
  dbp_wq_handle ah = {(uint32_t)agent_do(&a, OP_IDX, 0, 0, 0), 0, 0};
  atomic_store(&q->turn, make_turn(p.c, WQ_GRANTED, ah.idx));
  atomic_store(&q->turn_ns, 0);
  keep_alive(p.c, &ah, -1000);
  uint64_t expired = wstats(p.c).turns_expired;
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK(wstats(p.c).turns_expired == expired + 1);
  /* Woken but no longer queued: not counted as beaten. */
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_WAIT);
  CHECK(atomic_load(&q->entries[ah.idx].losses) == 0);
  /* A waiting-count already at zero stays there when a waiter leaves. */
  atomic_store(&q->n_waiting, 0);
  agent_do(&a, OP_DROP, 0, 0, 0);
  CHECK(atomic_load(&q->n_waiting) == 0);
  /* Oldest-waiter hint unknown (0): the hand-off decision scans. */
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  atomic_store(&q->oldest_ns, 0);
  dbp_wq_done(p.c, &h, true);
  CHECK(turn_kind(p.c) == WQ_FREE); /* nobody starves */
  /* A place that expired long ago: a new ticket, at the back. */
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 1, 0), DBP_WQ_GO);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  listed(p.c, getpid(), &me);
  uint64_t t1 = me.ticket;
  dbp_wq_drop(p.c, &h);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  listed(p.c, getpid(), &me);
  uint64_t t2 = me.ticket;
  CHECK(t2 > t1);
  dbp_wq_release(p.c, &h);
  atomic_store(&q->entries[h.idx].state, WQE_WORD(h.gen, WQE_IDLE));
  atomic_store(&q->entries[h.idx].expired_ns, dbp_mono_ns() - (int64_t)2000 * 1000000);
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_WAIT);
  listed(p.c, getpid(), &me);
  CHECK(me.ticket > t2);
  /* Waiting since "the future": listed as waiting 0 ns. */
  atomic_store(&q->entries[h.idx].since_ns, INT64_MAX);
  listed(p.c, getpid(), &me);
  CHECK(me.state == DBPOOL_WRITER_WAITING && me.waited_ns == 0);
  agent_do(&a, OP_DONE, 0, 1, 0);
  CHECK_RC(dbp_wq_acquire(p.c, &h, true), DBP_WQ_GO);
  dbp_wq_done(p.c, &h, true);
  agent_stop(&a);
  tu_pool_close(&p);
}

TEST(an_entry_taken_from_a_live_writer_is_replaced)
{
  tu_pool p = tu_pool_open("wq_stolen.db", 10, 1, 1);
  dbp_writerq *q = wq_of(p.c);
  agent b = agent_start(p.db), c = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  uint32_t bi = (uint32_t)agent_do(&b, OP_IDX, 0, 0, 0);
  /* Its entry names a process record far past the table: taken for dead. */
  atomic_store(&q->entries[bi].proc, 100000);
  CHECK_RC(agent_do(&c, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  CHECK_RC(agent_do(&c, OP_WAIT, 0, 0, 60), DBP_WQ_TIMEOUT); /* c's check frees it */
  CHECK(wstats(p.c).turns_skipped == 1);
  CHECK(WQE_KIND(atomic_load(&q->entries[bi].state)) == WQE_FREE);
  /* b, alive, goes on with its old handle: its calls find no entry. */
  agent_do(&b, OP_DONE, 0, 0, 0);
  CHECK(turn_kind(p.c) == WQ_HELD); /* ours still */
  /* Someone else takes the entry (a new generation) ... */
  dbp_wq_handle x[8];
  int n = 0;
  for (; n < 8; n++) {
    x[n] = fresh();
    dbp_wq_acquire(p.c, &x[n], false); /* SELF: it only takes an entry */
    if (x[n].idx == bi) break;
  }
  CHECK(n < 8);
  /* ... and b's next write takes another entry. */
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  CHECK((uint32_t)agent_do(&b, OP_IDX, 0, 0, 0) != bi);
  dbp_wq_done(p.c, &h, true);
  agent_stop(&b);
  agent_stop(&c);
  tu_pool_close(&p);
}

/* ------------------------------------------------------------ the API */

TEST(statistics_and_listing_check_their_arguments)
{
  tu_pool p = tu_pool_open("wq_api.db", 10, 1, 1);
  dbpool_writer_stats ws;
  DBPOOL_INIT(&ws);
  CHECK_RC(dbpool_coord_writer_stats(NULL, &ws), -EINVAL);
  CHECK_RC(dbpool_coord_writer_stats(p.c, NULL), -EINVAL);
  ws.size = 8;
  CHECK_RC(dbpool_coord_writer_stats(p.c, &ws), -EINVAL);
  dbpool_writer_info w[2];
  CHECK_RC(dbpool_coord_writers(NULL, w, 2, sizeof w[0]), -EINVAL);
  CHECK_RC(dbpool_coord_writers(p.c, NULL, 2, sizeof w[0]), -EINVAL);
  CHECK_RC(dbpool_coord_writers(p.c, w, 2, 4), -EINVAL);
  /* Fewer places than writers: the count of them all. */
  agent a = agent_start(p.db), b = agent_start(p.db);
  dbp_wq_handle h = fresh();
  CHECK_RC(dbp_wq_acquire(p.c, &h, false), DBP_WQ_GO);
  CHECK_RC(agent_do(&a, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  CHECK_RC(agent_do(&b, OP_ACQ, 0, 0, 0), DBP_WQ_WAIT);
  memset(w, 0, sizeof w);
  CHECK_RC(dbpool_coord_writers(p.c, w, 1, sizeof w[0]), 3);
  CHECK(w[0].pid != 0 && w[1].pid == 0);
  CHECK_STR(dbpool_writer_state_name((dbpool_writer_state)0), "?");
  CHECK_STR(dbpool_writer_state_name((dbpool_writer_state)99), "?");
  dbp_wq_done(p.c, &h, true);
  agent_stop(&a);
  agent_stop(&b);
  tu_pool_close(&p);
}

/* ------------------------------------------------------------- races */

typedef struct {
  _Atomic int inside, overlap;
  _Atomic uint64_t writes;
} race_shared;

typedef struct {
  dbpool_coord *c;
  race_shared *s;
  int n;
} racer_arg;

static void *racer(void *p)
{
  racer_arg *r = p;
  dbp_wq_handle h = fresh();
  for (int i = 0; i < r->n; i++) {
    int rc;
    bool woken = false;
    while ((rc = dbp_wq_acquire(r->c, &h, woken)) == DBP_WQ_WAIT)
      woken = dbp_wq_wait(r->c, &h, ms_from_now(50), false) == DBP_WQ_READY;
    if (rc != DBP_WQ_GO) continue;
    dbp_wq_taken(r->c, &h);
    if (atomic_fetch_add(&r->s->inside, 1) != 0) atomic_fetch_add(&r->s->overlap, 1);
    if (i % 4 == 0) sched_yield();
    atomic_fetch_sub(&r->s->inside, 1);
    atomic_fetch_add(&r->s->writes, 1);
    dbp_wq_done(r->c, &h, i % 8 != 0);
  }
  dbp_wq_drop(r->c, &h);
  return NULL;
}

static void race_in(dbpool_coord *c, race_shared *s, int threads, int n)
{
  pthread_t th[4];
  racer_arg arg = {c, s, n};
  for (int t = 0; t < threads; t++) REQUIRE(pthread_create(&th[t], NULL, racer, &arg) == 0);
  for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
}

TEST(racing_writers_never_hold_the_turn_at_once)
{
  tu_pool p = tu_pool_open("wq_race.db", 10, 1, 1);
  CHECK_RC(dbpool_coord_set(p.c, STARVE, 1), 0);
  race_shared *s = tu_shared(sizeof *s);
  enum { PROCS = 3, THREADS = 3, N = 2000 };
  pid_t pids[PROCS];
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      dbpool_holder *hd = tu_child_take_slot(p.db, NULL);
      race_in(hd->c, s, THREADS, N);
      _exit(0);
    }
  }
  race_in(p.c, s, THREADS, N);
  for (int i = 0; i < PROCS; i++) CHECK(tu_wait_child(pids[i], 120000) == 0);
  dbpool_writer_stats ws = wstats(p.c);
  CHECK(atomic_load(&s->overlap) == 0);
  CHECK(atomic_load(&s->writes) == (uint64_t)(PROCS + 1) * THREADS * N);
  CHECK(ws.writing == 0);
  printf("   %llu turns, %llu waited, %llu strict hand-offs, %llu expired\n",
         (unsigned long long)ws.total_writes, (unsigned long long)ws.total_waits,
         (unsigned long long)ws.strict_handoffs, (unsigned long long)ws.turns_expired);
  munmap(s, sizeof *s);
  tu_pool_close(&p);
}

int main(void)
{
  tu_init("writer_queue");
  signal(SIGPIPE, SIG_IGN);
  RUN(turns_go_to_the_first_to_ask_and_waiters_are_counted);
  RUN(a_thread_never_waits_on_its_own_other_connection);
  RUN(a_connection_used_from_another_thread_is_judged_by_that_thread);
  RUN(a_starving_waiter_is_woken_early_and_handed_the_turn);
  RUN(a_free_turn_goes_to_the_starving_head_not_to_a_barger);
  RUN(a_writer_beaten_twice_gets_the_next_turn);
  RUN(strict_handoffs_are_spaced_by_a_sixteenth_of_the_threshold);
  RUN(a_waiters_check_expires_a_grant_nobody_claims);
  RUN(a_waiter_finding_the_turn_free_hands_it_to_the_starving_head);
  RUN(a_reserved_turn_is_kept_for_the_waiter_that_reserved_it);
  RUN(an_unclaimed_grant_expires_and_its_owner_keeps_its_place);
  RUN(a_turn_used_for_nothing_keeps_its_place_briefly);
  RUN(a_turn_kept_while_the_real_lock_is_busy_stays_ours);
  RUN(a_turn_held_by_a_killed_process_is_skipped);
  RUN(a_turn_held_by_a_reaped_process_is_skipped);
  RUN(a_killed_waiter_loses_its_place);
  RUN(a_waiter_that_stopped_coming_back_expires_and_is_never_handed_the_turn);
  RUN(a_waiter_the_kernel_will_not_put_to_sleep_gives_up_at_once);
  RUN(turning_the_queue_off_releases_every_waiter);
  RUN(only_a_process_holding_a_slot_in_the_pool_queues);
  RUN(a_pool_created_with_the_queue_off_does_not_queue);
  RUN(a_full_entry_table_is_refilled_from_dead_processes);
  RUN(garbage_in_the_turn_word_never_stalls_writers);
  RUN(garbage_in_entries_clocks_and_counters_never_stalls_writers);
  RUN(garbage_that_names_us_never_confuses_a_writer);
  RUN(an_entry_taken_from_a_live_writer_is_replaced);
  RUN(statistics_and_listing_check_their_arguments);
  RUN(racing_writers_never_hold_the_turn_at_once);
  return tu_finish();
}
