/*
** interrupt.c -- the interruptible acquire the SQLite extension uses
** (coordinator/private.h): SIGINT or SIGQUIT caught by a handler ends a
** wait for a slot at once with -EINTR; every other signal (SIGTERM and
** SIGHUP too: a graceful stop or reload finishes the work in hand) is held
** while the waiter sleeps and delivered between sleeps, and never ends or
** extends the wait; a signal the application blocks stays blocked; the
** thread's mask is as it was afterwards; the public dbpool_holder_acquire
** is not interruptible.
**
** Handlers are installed both with and without SA_RESTART (the sqlite3
** shell's SIGINT handler has it): with a deadline the kernel ends a futex
** sleep with EINTR either way. Bounds are loose (a loaded machine): an
** interrupted wait of 10 s must end within 3 s of the signal (times
** tu_slowdown() under valgrind, the resends' second too).
**
** A signal that arrives in the instant a sleep ends by itself (see
** sigwait.c) runs its handler and the wait goes on, as a user's Ctrl-C can
** need a second press: the tests send it again after a second, as a user
** would, and allow that for at most 2 of 8 waits (on an idle machine it
** practically never happens). Under valgrind, which delivers signals
** itself, at its own points, it often does: those two bounds are not
** checked there (the wait must still end, within the scaled bounds).
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/time.h>

#include "testutil.h"

static _Atomic int g_caught[NSIG];

static void on_signal(int sig) { atomic_fetch_add(&g_caught[sig], 1); }

static void install(int sig, int flags)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = flags;
  sigaction(sig, &sa, NULL);
}

typedef struct {
  dbpool_holder *h;
  int timeout_ms;
  bool interruptible;
  bool block_sigint; /* the application blocks SIGINT in this thread */
  _Atomic int started, done;
  int rc;
  double took_ms;
  char error[512];
  bool mask_kept;         /* the thread's mask afterwards is the one before */
  bool sigint_pending;    /* afterwards (only with block_sigint) */
} wait_arg;

static void *waiter(void *p)
{
  wait_arg *w = p;
  sigset_t before, after, pending;
  if (w->block_sigint) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
  }
  pthread_sigmask(SIG_SETMASK, NULL, &before);
  atomic_store(&w->started, 1);
  double t0 = tu_now_ms();
  w->rc = w->interruptible ? dbp_holder_acquire_interruptible(w->h, w->timeout_ms)
                           : dbpool_holder_acquire(w->h, w->timeout_ms);
  w->took_ms = tu_now_ms() - t0;
  snprintf(w->error, sizeof w->error, "%s", dbpool_last_error());
  pthread_sigmask(SIG_SETMASK, NULL, &after);
  w->mask_kept = true;
  for (int s = 1; s < NSIG; s++)
    if (sigismember(&before, s) != sigismember(&after, s)) w->mask_kept = false;
  sigpending(&pending);
  w->sigint_pending = sigismember(&pending, SIGINT);
  atomic_store(&w->done, 1);
  return NULL;
}

static dbpool_coord *open_full(const char *name, dbpool_holder **first,
                               dbpool_holder **second)
{
  dbpool_coord *c = NULL;
  REQUIRE(dbpool_coord_open(tu_db(name), 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
  REQUIRE(dbpool_holder_new(c, first) == 0);
  REQUIRE(dbpool_holder_acquire(*first, 0) == 0);
  REQUIRE(dbpool_holder_new(c, second) == 0);
  return c;
}

static void wait_queued(dbpool_coord *c)
{
  double end = tu_now_ms() + tu_ms(10000);
  while (dbp_coord_waiting(c) < 1 && tu_now_ms() < end) tu_sleep_ms(0.5);
  REQUIRE(dbp_coord_waiting(c) == 1);
}

static void start(pthread_t *t, wait_arg *w)
{
  REQUIRE(pthread_create(t, NULL, waiter, w) == 0);
  double end = tu_now_ms() + tu_ms(10000);
  while (!atomic_load(&w->started) && tu_now_ms() < end) tu_sleep_ms(0.5);
}

/* Send sig to thread t (or, t NULL, to process pid) until *done, at most 3
** times a second apart. Returns how many were sent. */
static int interrupt(const pthread_t *t, pid_t pid, int sig, _Atomic int *done)
{
  int sent = 0;
  for (double next = 0; !atomic_load(done) && sent < 3; tu_sleep_ms(1)) {
    if (tu_now_ms() < next) continue;
    if (t) pthread_kill(*t, sig);
    else kill(pid, sig);
    sent++;
    next = tu_now_ms() + tu_ms(1000);
  }
  return sent;
}

/* Either ending signal, caught with and without SA_RESTART, ends a 10 s
** wait at once, with the message, and leaves the queue. */
TEST(an_ending_signal_ends_the_wait)
{
  static const int ending[] = {SIGINT, SIGQUIT};
  int resent = 0;
  for (int k = 0; k < 8; k++) {
    int sig = ending[k % 2], flags = k % 4 < 2 ? SA_RESTART : 0;
    char name[32];
    snprintf(name, sizeof name, "end-%d.db", k);
    dbpool_holder *p, *h;
    dbpool_coord *c = open_full(name, &p, &h);
    install(sig, flags);
    int caught0 = atomic_load(&g_caught[sig]);
    wait_arg w = {.h = h, .timeout_ms = (int)tu_ms(10000), .interruptible = true};
    pthread_t t;
    start(&t, &w);
    wait_queued(c);
    double t0 = tu_now_ms();
    int sent = interrupt(&t, 0, sig, &w.done);
    pthread_join(t, NULL);
    double after_signal = tu_now_ms() - t0;
    resent += sent - 1;
    CHECK_RC(w.rc, -EINTR);
    CHECK(after_signal < tu_ms(3000));
    char want[600];
    snprintf(want, sizeof want, "dbpool: interrupted while waiting for a slot of %s",
             tu_db(name));
    CHECK_STR(w.error, want);
    CHECK(w.mask_kept);
    int caught = atomic_load(&g_caught[sig]) - caught0;
    CHECK(caught >= 1 && caught <= sent); /* a late resend may find it gone */
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    CHECK_RC(dbpool_coord_stats(c, &st), 0);
    CHECK(st.waiting == 0 && st.active == 1 && st.total_timeouts == 0);
    CHECK(!dbpool_holder_held(h));
    /* The holder waits again normally afterwards. */
    CHECK_RC(dbpool_holder_release(p), 0);
    CHECK_RC(dbp_holder_acquire_interruptible(h, (int)tu_ms(1000)), 0);
    dbpool_holder_free(h);
    dbpool_holder_free(p);
    dbpool_coord_close(c);
    signal(sig, SIG_DFL);
  }
  if (tu_slowdown() == 1)
    CHECK(resent <= 2);
  else /* valgrind delivers a signal at its own points, often after a sleep */
    printf("   %d of 8 waits needed the signal again; at most 2 not checked under "
           "valgrind: it delivers signals itself, often once a sleep has ended\n",
           resent);
}

/* Signals a process uses for other work (here SIGUSR1 every 2 ms and
** SIGALRM from an interval timer) neither end nor extend an interruptible
** wait; they are delivered between its sleeps. */
TEST(other_signals_are_held_and_delivered_between_sleeps)
{
  dbpool_holder *p, *h;
  dbpool_coord *c = open_full("others.db", &p, &h);
  install(SIGUSR1, 0);
  install(SIGALRM, 0);
  int usr0 = atomic_load(&g_caught[SIGUSR1]), alrm0 = atomic_load(&g_caught[SIGALRM]);
  wait_arg w = {.h = h, .timeout_ms = (int)tu_ms(500), .interruptible = true};
  pthread_t t;
  start(&t, &w);
  wait_queued(c);
  struct itimerval it = {{0, 10000}, {0, 10000}};
  setitimer(ITIMER_REAL, &it, NULL); /* SIGALRM to the process */
  int sent = 0;
  while (!atomic_load(&w.done) && sent < tu_polls(5000)) {
    if (pthread_kill(t, SIGUSR1) == 0) sent++;
    tu_sleep_ms(2);
  }
  pthread_join(t, NULL);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  CHECK_RC(w.rc, -ETIMEDOUT);
  CHECK(w.took_ms >= w.timeout_ms && w.took_ms < tu_ms(3000));
  CHECK(strstr(w.error, "are in use (waited") != NULL);
  CHECK(w.mask_kept);
  /* Held while it slept (coalesced), delivered between sleeps. */
  CHECK(atomic_load(&g_caught[SIGUSR1]) - usr0 >= 5);
  CHECK(atomic_load(&g_caught[SIGALRM]) - alrm0 >= 1);
  if (w.took_ms < w.timeout_ms || w.took_ms >= tu_ms(3000))
    fprintf(stderr, "  took %.1f ms\n", w.took_ms);
  dbpool_holder_free(h);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
  signal(SIGUSR1, SIG_DFL);
  signal(SIGALRM, SIG_DFL);
}

/* A caught SIGTERM or SIGHUP (a graceful stop or reload, as gunicorn's
** workers take SIGTERM) does not fail the wait: the handler runs, the waiter
** stays queued, and it gets the slot the holder gives back. */
TEST(a_graceful_stop_signal_lets_the_wait_finish)
{
  static const int graceful[] = {SIGTERM, SIGHUP};
  for (int k = 0; k < 2; k++) {
    int sig = graceful[k];
    char name[32];
    snprintf(name, sizeof name, "graceful-%d.db", k);
    dbpool_holder *p, *h;
    dbpool_coord *c = open_full(name, &p, &h);
    install(sig, SA_RESTART);
    int caught0 = atomic_load(&g_caught[sig]);
    wait_arg w = {.h = h, .timeout_ms = (int)tu_ms(10000), .interruptible = true};
    pthread_t t;
    start(&t, &w);
    wait_queued(c);
    for (int i = 0; i < 3; i++) {
      pthread_kill(t, sig);
      tu_sleep_ms(60);
    }
    /* Delivered between sleeps (held while asleep: at least one ran). */
    double end = tu_now_ms() + tu_ms(5000);
    while (atomic_load(&g_caught[sig]) == caught0 && tu_now_ms() < end) tu_sleep_ms(5);
    CHECK(atomic_load(&g_caught[sig]) - caught0 >= 1);
    CHECK(!atomic_load(&w.done));
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    CHECK_RC(dbpool_coord_stats(c, &st), 0);
    CHECK(st.waiting == 1);
    CHECK_RC(dbpool_holder_release(p), 0);
    pthread_join(t, NULL);
    CHECK_RC(w.rc, 0);
    CHECK(w.mask_kept);
    CHECK(dbpool_holder_held(h));
    CHECK_RC(dbpool_holder_release(h), 0);
    dbpool_holder_free(h);
    dbpool_holder_free(p);
    dbpool_coord_close(c);
    signal(sig, SIG_DFL);
  }
}

/* A SIGINT the application blocks in the waiting thread stays blocked: the
** wait runs to its timeout, and the signal is still pending afterwards. */
TEST(a_signal_the_application_blocks_stays_blocked)
{
  dbpool_holder *p, *h;
  dbpool_coord *c = open_full("blocked.db", &p, &h);
  install(SIGINT, 0);
  int caught0 = atomic_load(&g_caught[SIGINT]);
  wait_arg w = {.h = h, .timeout_ms = 300, .interruptible = true, .block_sigint = true};
  pthread_t t;
  start(&t, &w);
  wait_queued(c);
  pthread_kill(t, SIGINT);
  pthread_join(t, NULL);
  CHECK_RC(w.rc, -ETIMEDOUT);
  CHECK(w.took_ms >= 300);
  CHECK(w.mask_kept);
  CHECK(w.sigint_pending);
  CHECK_RC(atomic_load(&g_caught[SIGINT]) - caught0, 0);
  dbpool_holder_free(h);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
  signal(SIGINT, SIG_DFL);
}

/* dbpool_holder_acquire keeps its promise: signals neither fail nor
** extend a wait, SIGINT included. */
TEST(the_public_acquire_is_not_interruptible)
{
  dbpool_holder *p, *h;
  dbpool_coord *c = open_full("public.db", &p, &h);
  install(SIGINT, 0);
  wait_arg w = {.h = h, .timeout_ms = 300};
  pthread_t t;
  start(&t, &w);
  wait_queued(c);
  for (int i = 0; i < 10 && !atomic_load(&w.done); i++) {
    pthread_kill(t, SIGINT);
    tu_sleep_ms(10);
  }
  pthread_join(t, NULL);
  CHECK_RC(w.rc, -ETIMEDOUT);
  CHECK(w.took_ms >= 300);
  dbpool_holder_free(h);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
  signal(SIGINT, SIG_DFL);
}

/* A process-directed SIGINT (kill(pid), as Ctrl-C sends) ends the wait of
** a single-threaded process whose handler has SA_RESTART, as the sqlite3
** shell's does. */
TEST(ctrl_c_ends_the_wait_of_a_process)
{
  dbpool_holder *p, *unused;
  dbpool_coord *c = open_full("proc.db", &p, &unused);
  dbpool_holder_free(unused);
  struct report { _Atomic int started, done; int rc; double took_ms; int caught; } *r;
  r = tu_shared(sizeof *r);
  r->rc = 1;
  const char *db = tu_db("proc.db");
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(tu_sec(30));
    install(SIGINT, SA_RESTART);
    atomic_store(&g_caught[SIGINT], 0);
    dbpool_coord *cc;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &cc) || dbpool_holder_new(cc, &h)) _exit(3);
    atomic_store(&r->started, 1);
    double t0 = tu_now_ms();
    r->rc = dbp_holder_acquire_interruptible(h, (int)tu_ms(10000));
    r->took_ms = tu_now_ms() - t0;
    r->caught = atomic_load(&g_caught[SIGINT]);
    atomic_store(&r->done, 1);
    dbpool_holder_free(h);
    dbpool_coord_close(cc);
    _exit(0);
  }
  wait_queued(c);
  double t0 = tu_now_ms();
  int sent = interrupt(NULL, pid, SIGINT, &r->done);
  CHECK_RC(tu_wait_child(pid, 10000), 0);
  CHECK(tu_now_ms() - t0 < tu_ms(3000));
  if (tu_slowdown() == 1) CHECK(sent <= 2); /* under valgrind: as above */
  CHECK_RC(r->rc, -EINTR);
  CHECK(r->caught >= 1 && r->caught <= sent);
  CHECK(r->took_ms < tu_ms(9000));
  CHECK_RC(dbp_coord_waiting(c), 0);
  dbpool_holder_free(p);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("interrupt");
  RUN(an_ending_signal_ends_the_wait);
  RUN(other_signals_are_held_and_delivered_between_sleeps);
  RUN(a_graceful_stop_signal_lets_the_wait_finish);
  RUN(a_signal_the_application_blocks_stays_blocked);
  RUN(the_public_acquire_is_not_interruptible);
  RUN(ctrl_c_ends_the_wait_of_a_process);
  return tu_finish();
}
