/*
** base.c -- the low-level primitives of base/ (one definition for the
** coordinator, the pool and the extension): every futex outcome is told
** apart (a wake, a changed word, the deadline, a signal, and an unusable
** address are five different answers), the tid cache is refreshed in a
** forked child, and the message buffer is per thread.
*/
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include "base/base.h"
#include "testutil.h"

static _Atomic uint32_t word;

TEST(futex_changed_word_is_not_a_sleep)
{
  atomic_store(&word, 5);
  double t0 = tu_now_ms();
  CHECK_RC(dbp_futex_wait_once(&word, 4, -1, DBP_FUTEX_PRIVATE), 0); /* EAGAIN */
  CHECK_RC(dbp_futex_wait_once(&word, 4, -1, DBP_FUTEX_SHARED), 0);
  CHECK(tu_now_ms() - t0 < tu_ms(5000));
}

TEST(futex_deadline_is_etimedout_never_early)
{
  atomic_store(&word, 0);
  for (int scope = 0; scope < 2; scope++) {
    int64_t deadline = dbp_mono_ns() + 30 * 1000000LL;
    CHECK_RC(dbp_futex_wait(&word, 0, deadline, (dbp_futex_scope)scope), -ETIMEDOUT);
    CHECK(dbp_mono_ns() >= deadline);
  }
}

static void *waker(void *arg)
{
  (void)arg;
  tu_sleep_ms(20);
  atomic_store(&word, 1);
  dbp_futex_wake(&word, 1, DBP_FUTEX_PRIVATE);
  return NULL;
}

TEST(futex_wake_is_zero)
{
  atomic_store(&word, 0);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, waker, NULL) == 0);
  int rc;
  do rc = dbp_futex_wait(&word, 0, dbp_mono_ns() + 60000 * 1000000LL, DBP_FUTEX_PRIVATE);
  while (rc == 0 && atomic_load(&word) == 0); /* a spurious wake looks again */
  CHECK_RC(rc, 0);
  CHECK(atomic_load(&word) == 1);
  pthread_join(t, NULL);
}

static void on_alarm(int sig) { (void)sig; }

TEST(futex_signal_is_eintr_once_and_waited_out_otherwise)
{
  struct sigaction sa = {.sa_handler = on_alarm}, old;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* the kernel still says EINTR with a deadline */
  REQUIRE(sigaction(SIGALRM, &sa, &old) == 0);
  atomic_store(&word, 0);
  struct itimerval it = {.it_value = {.tv_usec = 20000}};
  REQUIRE(setitimer(ITIMER_REAL, &it, NULL) == 0);
  int64_t deadline = dbp_mono_ns() + 60000 * 1000000LL;
  CHECK_RC(dbp_futex_wait_once(&word, 0, deadline, DBP_FUTEX_SHARED), -EINTR);
  CHECK(dbp_mono_ns() < deadline);
  /* dbp_futex_wait sleeps on through the signal, to its deadline. */
  REQUIRE(setitimer(ITIMER_REAL, &it, NULL) == 0);
  deadline = dbp_mono_ns() + 200 * 1000000LL;
  CHECK_RC(dbp_futex_wait(&word, 0, deadline, DBP_FUTEX_SHARED), -ETIMEDOUT);
  CHECK(dbp_mono_ns() >= deadline);
  sigaction(SIGALRM, &old, NULL);
}

TEST(futex_unusable_word_is_an_error_not_a_wake)
{
  /* An unmapped page (EFAULT) and a misaligned word (EINVAL): both used
  ** to be taken for a wake-up, which turns a wait loop into a spin. */
  long page = sysconf(_SC_PAGESIZE);
  char *p = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  REQUIRE(munmap(p, (size_t)page) == 0);
  int64_t deadline = dbp_mono_ns() + (int64_t)tu_ms(10000) * 1000000LL;
  CHECK_RC(dbp_futex_wait((_Atomic uint32_t *)p, 0, deadline, DBP_FUTEX_SHARED), -EFAULT);
  static _Alignas(8) char buf[8];
  CHECK_RC(dbp_futex_wait((_Atomic uint32_t *)(buf + 1), 0, deadline, DBP_FUTEX_PRIVATE),
           -EINVAL);
  CHECK(dbp_mono_ns() < deadline);
}

TEST(tid_and_pid_are_refreshed_after_fork)
{
  pid_t tid = dbp_tid(), pid = dbp_pid();
  CHECK(tid == (pid_t)syscall(SYS_gettid) && pid == getpid());
  unsigned gen = dbp_fork_gen();
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int ok = dbp_tid() == (pid_t)syscall(SYS_gettid) && dbp_pid() == getpid() &&
             dbp_pid() != pid && dbp_fork_gen() != gen;
    _exit(ok ? 0 : 1);
  }
  int st;
  REQUIRE(waitpid(child, &st, 0) == child);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(dbp_fork_gen() == gen && dbp_tid() == tid);
}

static void *other_thread_message(void *arg)
{
  dbp_err(-EINVAL, "dbpool: from the other thread");
  *(int *)arg = strcmp(dbpool_last_error(), "dbpool: from the other thread") == 0;
  return NULL;
}

TEST(messages_are_per_thread_and_shared_by_both_layers)
{
  dbp_err(-ENOENT, "dbpool: mine %d", 7);
  int ok = 0;
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, other_thread_message, &ok) == 0);
  pthread_join(t, NULL);
  CHECK(ok);
  CHECK_STR(dbpool_last_error(), "dbpool: mine 7");
  CHECK(dbp_errmsg() == dbpool_last_error());
}

int main(void)
{
  tu_init("base");
  RUN(futex_changed_word_is_not_a_sleep);
  RUN(futex_deadline_is_etimedout_never_early);
  RUN(futex_wake_is_zero);
  RUN(futex_signal_is_eintr_once_and_waited_out_otherwise);
  RUN(futex_unusable_word_is_an_error_not_a_wake);
  RUN(tid_and_pid_are_refreshed_after_fork);
  RUN(messages_are_per_thread_and_shared_by_both_layers);
  return tu_finish();
}
