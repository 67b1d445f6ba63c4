/*
** signals.c -- signals during a wait neither fail the call nor move its
** deadline (dbpool_holder_acquire: "an absolute deadline: signals neither
** fail the call nor extend it").
**
** The handlers are installed WITHOUT SA_RESTART, so every blocking system
** call the library makes while a signal arrives returns EINTR; the library
** must retry against the same absolute deadline. Checks:
**   - a waiter with a 400 ms timeout receiving SIGUSR1 every ~20 ms (a
**     thread targeted with pthread_kill, and a separate process) returns
**     -ETIMEDOUT after >= 400 ms and well before 2 s, having received many
**     signals; a storm of signals (every ~1 ms) does not extend it either;
**   - the same with DBPOOL_TIMEOUT_DEFAULT (the pool's acquire_timeout_ms);
**   - a waiter with an infinite timeout receiving signals keeps waiting
**     (still queued, not returned) and gets the slot when it is released;
**   - dbp_coord_wait_for_waiter ends only as documented (a waiter, its
**     timeout, dbp_coord_wake_listeners): signals neither end it early
**     nor extend its timeout.
** Timing bounds are deliberately loose (noisy machine): only the lower bound
** is exact, because the deadline is measured on the same monotonic clock.
** Under a slow runner (valgrind: tu_slowdown) the timeouts, the upper
** bounds and the time spent signalling all grow by its factor, so that as
** many signals arrive during a wait.
*/
#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"

#define TIMEOUT_MS ((int)tu_ms(400)) /* the waits that must time out */

static _Atomic int g_signals; /* delivered to this process's handler */

static void on_signal(int sig)
{
  (void)sig;
  atomic_fetch_add(&g_signals, 1);
}

static void install_handler(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: interrupted system calls fail with EINTR */
  sigaction(SIGUSR1, &sa, NULL);
}

typedef struct {
  dbpool_holder *h;
  int timeout_ms;
  _Atomic int started;
  _Atomic int done;
  int rc;
  double took_ms;
  int signals; /* signals the waiter saw during its call */
} wait_arg;

static void *waiter(void *p)
{
  wait_arg *w = p;
  int s0 = atomic_load(&g_signals);
  atomic_store(&w->started, 1);
  double t0 = tu_now_ms();
  w->rc = dbpool_holder_acquire(w->h, w->timeout_ms);
  w->took_ms = tu_now_ms() - t0;
  w->signals = atomic_load(&g_signals) - s0;
  atomic_store(&w->done, 1);
  return NULL;
}

static void wait_started(_Atomic int *flag)
{
  double end = tu_now_ms() + tu_ms(10000);
  while (!atomic_load(flag) && tu_now_ms() < end) tu_sleep_ms(0.5);
}

/* Open a pool with limit 1 and its slot held by *first. */
static dbpool_coord *open_full(const char *name, dbpool_holder **first)
{
  dbpool_coord *c = NULL;
  REQUIRE(dbpool_coord_open(tu_db(name), 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
  REQUIRE(dbpool_holder_new(c, first) == 0);
  REQUIRE(dbpool_holder_acquire(*first, 0) == 0);
  return c;
}

/* Signal thread t every interval_ms until *done; returns signals sent. */
static int pester_thread(pthread_t t, _Atomic int *done, double interval_ms,
                         double max_ms)
{
  int sent = 0;
  double end = tu_now_ms() + max_ms;
  while (!atomic_load(done) && tu_now_ms() < end) {
    if (pthread_kill(t, SIGUSR1) == 0) sent++;
    tu_sleep_ms(interval_ms);
  }
  return sent;
}

static void timed_wait_under_signals(const char *db, int timeout, int acquire_arg,
                                     double interval_ms, int min_signals)
{
  dbpool_holder *p, *h;
  dbpool_coord *c = open_full(db, &p);
  if (acquire_arg == DBPOOL_TIMEOUT_DEFAULT)
    CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, timeout), 0);
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  wait_arg w = {.h = h, .timeout_ms = acquire_arg, .rc = 1};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, waiter, &w) == 0);
  wait_started(&w.started);
  int sent = pester_thread(t, &w.done, interval_ms, tu_ms(10000));
  pthread_join(t, NULL);
  CHECK_RC(w.rc, -ETIMEDOUT);
  CHECK(w.took_ms >= timeout);
  CHECK(w.took_ms < tu_ms(2000));
  CHECK(w.signals >= min_signals);
  CHECK(sent >= min_signals);
  if (w.took_ms < timeout || w.took_ms >= tu_ms(2000) || w.signals < min_signals)
    fprintf(stderr, "  took %.1f ms for a %d ms timeout, %d signals\n", w.took_ms,
            timeout, w.signals);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.waiting == 0 && st.active == 1 && st.total_timeouts == 1);
  CHECK(!dbpool_holder_held(h));
  /* The holder is usable again afterwards. */
  CHECK_RC(dbpool_holder_release(p), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  dbpool_holder_free(h);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

TEST(thread_timeout_is_not_moved_by_signals)
{
  timed_wait_under_signals("thr-timeout.db", TIMEOUT_MS, TIMEOUT_MS, 20, 5);
}

TEST(thread_timeout_survives_a_signal_storm)
{
  timed_wait_under_signals("thr-storm.db", TIMEOUT_MS, TIMEOUT_MS, 1, 50);
}

TEST(default_timeout_is_not_moved_by_signals)
{
  timed_wait_under_signals("thr-default.db", TIMEOUT_MS, DBPOOL_TIMEOUT_DEFAULT, 20, 5);
}

TEST(thread_infinite_wait_survives_signals)
{
  dbpool_holder *p, *h;
  dbpool_coord *c = open_full("thr-inf.db", &p);
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  wait_arg w = {.h = h, .timeout_ms = DBPOOL_TIMEOUT_INFINITE, .rc = 1};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, waiter, &w) == 0);
  wait_started(&w.started);
  _Atomic int stop = 0;
  int sent = pester_thread(t, &stop, 20, tu_ms(300)); /* 300 ms of signals */
  sent += pester_thread(t, &stop, 1, tu_ms(100));     /* then a storm */
  CHECK(sent >= 10);
  CHECK(!atomic_load(&w.done));        /* still waiting ... */
  CHECK_RC(dbp_coord_waiting(c), 1); /* ... and still queued */
  CHECK_RC(dbpool_holder_release(p), 0);
  double end = tu_now_ms() + tu_ms(10000);
  while (!atomic_load(&w.done) && tu_now_ms() < end) {
    pthread_kill(t, SIGUSR1); /* keep signalling while it wakes */
    tu_sleep_ms(2);
  }
  pthread_join(t, NULL);
  CHECK_RC(w.rc, 0);
  CHECK(w.signals >= 10);
  CHECK(dbpool_holder_held(h));
  CHECK_RC(dbpool_holder_release(h), 0);
  dbpool_holder_free(h);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

/* ---------------------------------------------------- waiters in processes */

typedef struct {
  _Atomic int started;
  _Atomic int done;
  int rc;
  double took_ms;
  int signals;
} proc_report;

static proc_report *R;

static pid_t spawn_waiter(const char *db, int timeout_ms)
{
  memset(R, 0, sizeof *R);
  R->rc = 1;
  pid_t pid = fork();
  if (pid < 0) exit(2);
  if (pid == 0) {
    alarm(tu_sec(30));
    install_handler();
    dbpool_coord *c;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &c) || dbpool_holder_new(c, &h)) _exit(3);
    atomic_store(&g_signals, 0);
    atomic_store(&R->started, 1);
    double t0 = tu_now_ms();
    int rc = dbpool_holder_acquire(h, timeout_ms);
    R->took_ms = tu_now_ms() - t0;
    R->signals = atomic_load(&g_signals);
    R->rc = rc;
    atomic_store(&R->done, 1);
    int bad = rc == 0 && dbpool_holder_release(h) != 0;
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    _exit(bad ? 4 : 0);
  }
  return pid;
}

static int pester_process(pid_t pid, double interval_ms, double max_ms)
{
  int sent = 0;
  double end = tu_now_ms() + max_ms;
  while (!atomic_load(&R->done) && tu_now_ms() < end) {
    if (kill(pid, SIGUSR1) == 0) sent++;
    tu_sleep_ms(interval_ms);
  }
  return sent;
}

TEST(process_timeout_is_not_moved_by_signals)
{
  dbpool_holder *p;
  const char *db = "proc-timeout.db";
  dbpool_coord *c = open_full(db, &p);
  pid_t pid = spawn_waiter(tu_db(db), TIMEOUT_MS);
  wait_started(&R->started);
  pester_process(pid, 20, tu_ms(10000));
  CHECK_RC(tu_wait_child(pid, 10000), 0);
  CHECK_RC(R->rc, -ETIMEDOUT);
  CHECK(R->took_ms >= TIMEOUT_MS && R->took_ms < tu_ms(2000));
  CHECK(R->signals >= 5);
  if (R->took_ms < TIMEOUT_MS || R->took_ms >= tu_ms(2000) || R->signals < 5)
    fprintf(stderr, "  took %.1f ms, %d signals\n", R->took_ms, R->signals);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.waiting == 0 && st.active == 1 && st.total_timeouts == 1);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

TEST(process_infinite_wait_survives_signals)
{
  dbpool_holder *p;
  const char *db = "proc-inf.db";
  dbpool_coord *c = open_full(db, &p);
  pid_t pid = spawn_waiter(tu_db(db), DBPOOL_TIMEOUT_INFINITE);
  wait_started(&R->started);
  double end = tu_now_ms() + tu_ms(10000);
  while (dbp_coord_waiting(c) < 1 && tu_now_ms() < end) tu_sleep_ms(0.5);
  int sent = pester_process(pid, 20, tu_ms(300));
  sent += pester_process(pid, 1, tu_ms(100));
  CHECK(sent >= 10);
  CHECK(!atomic_load(&R->done));
  CHECK_RC(dbp_coord_waiting(c), 1);
  CHECK_RC(dbpool_holder_release(p), 0);
  pester_process(pid, 2, tu_ms(10000)); /* until it has the slot */
  CHECK_RC(tu_wait_child(pid, 10000), 0);
  CHECK_RC(R->rc, 0);
  CHECK(R->signals >= 10);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.waiting == 0 && st.active == 0 && st.total_acquired == 2);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

/* dbp_coord_wait_for_waiter returns when a waiter queues, at its timeout,
** or when dbp_coord_wake_listeners is called -- not because of a signal:
** a thread blocked in it with no timeout keeps waiting through signals and
** is stopped by wake_listeners. */
typedef struct {
  dbpool_coord *c;
  int timeout_ms;
  _Atomic int started, done;
  int result;
  double took_ms;
} wfw_arg;

static void *wfw_thread(void *p)
{
  wfw_arg *a = p;
  atomic_store(&a->started, 1);
  double t0 = tu_now_ms();
  a->result = dbp_coord_wait_for_waiter(a->c, a->timeout_ms);
  a->took_ms = tu_now_ms() - t0;
  atomic_store(&a->done, 1);
  return NULL;
}

TEST(wait_for_waiter_survives_signals_and_is_woken)
{
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(tu_db("wfw.db"), 0, &c) == 0);
  wfw_arg a = {.c = c, .timeout_ms = DBPOOL_TIMEOUT_INFINITE, .result = -1};
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, wfw_thread, &a) == 0);
  wait_started(&a.started);
  int sent = pester_thread(t, &a.done, 20, tu_ms(300));
  sent += pester_thread(t, &a.done, 1, tu_ms(100));
  CHECK(sent >= 10);
  CHECK(!atomic_load(&a.done)); /* signals did not end it */
  double t0 = tu_now_ms();
  dbp_coord_wake_listeners(c);
  double end = t0 + tu_ms(5000);
  while (!atomic_load(&a.done) && tu_now_ms() < end) tu_sleep_ms(1);
  CHECK(atomic_load(&a.done));
  CHECK(tu_now_ms() - t0 < tu_ms(2000));
  pthread_join(t, NULL);
  CHECK_RC(a.result, 0); /* nobody waits */

  /* With a timeout: signals neither end it early nor extend it. */
  a = (wfw_arg){.c = c, .timeout_ms = TIMEOUT_MS, .result = -1};
  REQUIRE(pthread_create(&t, NULL, wfw_thread, &a) == 0);
  wait_started(&a.started);
  pester_thread(t, &a.done, 5, tu_ms(5000));
  pthread_join(t, NULL);
  CHECK_RC(a.result, 0);
  CHECK(a.took_ms >= TIMEOUT_MS && a.took_ms < tu_ms(2000));
  if (a.took_ms < TIMEOUT_MS || a.took_ms >= tu_ms(2000))
    fprintf(stderr, "  took %.1f ms\n", a.took_ms);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("signals");
  install_handler();
  R = tu_shared(sizeof *R);
  RUN(thread_timeout_is_not_moved_by_signals);
  RUN(thread_timeout_survives_a_signal_storm);
  RUN(default_timeout_is_not_moved_by_signals);
  RUN(thread_infinite_wait_survives_signals);
  RUN(process_timeout_is_not_moved_by_signals);
  RUN(process_infinite_wait_survives_signals);
  RUN(wait_for_waiter_survives_signals_and_is_woken);
  return tu_finish();
}
